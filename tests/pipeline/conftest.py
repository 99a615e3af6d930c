"""Fixtures for the pipeline tests: store URLs (SQLite file, PostgreSQL schema), a
throwaway redis-server (tests/support/redis_server.py), real `aidetect worker` processes."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

SUPPORT = Path(__file__).resolve().parents[1] / "support"
sys.path.insert(0, str(SUPPORT))

from images import write_bad_inputs, write_images  # noqa: E402,F401
from redis_server import RedisServer, free_port, redis_server  # noqa: E402,F401  (fixture)
from workers import WorkerProcess, pipeline_env  # noqa: E402,F401

PG_BASE = os.environ.get("AIDETECT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema (dropped afterwards); skips
    with the reason when the server cannot be reached."""
    import sqlalchemy as sa

    schema = f"aidetect_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_BASE)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    except Exception as exc:  # noqa: BLE001
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at {PG_BASE} ({type(exc).__name__}); set AIDETECT_TEST_PG")
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        from aidetect.store.engine import reset_engines

        reset_engines()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, aidetect_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The store under test: a SQLite file in AIDETECT_HOME, or a PostgreSQL schema."""
    from aidetect.store.engine import reset_engines

    if request.param == "sqlite":
        url = f"sqlite:///{aidetect_home}/aidetect.sqlite"
    else:
        url = request.getfixturevalue("pg_url")
    monkeypatch.setenv("AIDETECT_DATABASE_URL", url)
    reset_engines()
    yield url
    reset_engines()


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator:
    """start_worker(env, concurrency=2) -> a started WorkerProcess; all stopped after the test."""
    started: list[WorkerProcess] = []

    def _start(env: dict[str, str], concurrency: int = 2, extra: tuple[str, ...] = ()) -> WorkerProcess:
        w = WorkerProcess(env, tmp_path / f"worker{len(started)}.log", concurrency, extra)
        started.append(w)
        return w.start()

    yield _start
    for w in started:
        w.stop()
