"""Fixtures for the pipeline tests: store URLs (SQLite file, PostgreSQL schema), a
throwaway redis-server (tests/support/redis_server.py), real `aidetect worker` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

SUPPORT = Path(__file__).resolve().parents[1] / "support"
sys.path.insert(0, str(SUPPORT))

from images import write_bad_inputs, write_images  # noqa: E402,F401
from redis_server import RedisServer, free_port, redis_server  # noqa: E402,F401  (fixture)

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
        from aidetect.db.engine import reset_engines

        reset_engines()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, aidetect_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The store under test: a SQLite file in AIDETECT_HOME, or a PostgreSQL schema."""
    from aidetect.db.engine import reset_engines

    if request.param == "sqlite":
        url = f"sqlite:///{aidetect_home}/aidetect.sqlite"
    else:
        url = request.getfixturevalue("pg_url")
    monkeypatch.setenv("AIDETECT_DATABASE_URL", url)
    reset_engines()
    yield url
    reset_engines()


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(x) for x in text.split()]
    except OSError:
        out = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d.name))
                except (OSError, IndexError, ValueError):
                    pass
        return out


class WorkerProcess:
    """`aidetect worker -c N` as a real subprocess (Celery prefork)."""

    def __init__(self, env: dict[str, str], log: Path, concurrency: int = 2) -> None:
        self.env = env
        self.log_path = log
        self.concurrency = concurrency
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> WorkerProcess:
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aidetect.cli", "worker", "-c", str(self.concurrency), "-l", "INFO"],
            env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        from aidetect.ingest import workers_alive

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited {self.proc.returncode}:\n{self.log()}")
            if workers_alive() > 0:
                return self
            time.sleep(0.3)
        raise AssertionError(f"worker not alive after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def children(self) -> list[int]:
        assert self.proc is not None
        return _children(self.proc.pid)

    def kill_child(self) -> int:
        kids = self.children()
        assert kids, "worker has no pool children"
        os.kill(kids[0], signal.SIGKILL)
        return kids[0]

    def stop(self, timeout: float = 60.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                for kid in self.children():
                    os.kill(kid, signal.SIGKILL)
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        self.proc = None


def pipeline_env(home: Path, broker_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIDETECT_")}
    env["AIDETECT_HOME"] = str(home)
    if broker_url:
        env["AIDETECT_BROKER_URL"] = broker_url
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator:
    """start_worker(env, concurrency=2) -> a started WorkerProcess; all stopped after the test."""
    started: list[WorkerProcess] = []

    def _start(env: dict[str, str], concurrency: int = 2) -> WorkerProcess:
        w = WorkerProcess(env, tmp_path / f"worker{len(started)}.log", concurrency)
        started.append(w)
        return w.start()

    yield _start
    for w in started:
        w.stop()
