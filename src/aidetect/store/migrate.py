"""Apply the Alembic migrations shipped inside the package (no alembic.ini needed)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect

from aidetect.store.engine import get_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_done: set[tuple[int, str]] = set()
_lock = threading.Lock()


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _upgrade(engine: Engine) -> None:
    logging.getLogger("alembic").setLevel(logging.WARNING)
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def init_db(url: str | None = None) -> Engine:
    """Create or upgrade the schema for ``url`` (default: settings) and return its engine.
    Cheap after the first call in a process; safe to run from several processes at once
    (SQLite serialises them with BEGIN IMMEDIATE)."""
    import os

    engine = get_engine(url)
    key = (os.getpid(), str(engine.url))
    with _lock:
        if key in _done:
            return engine
        try:
            _upgrade(engine)
        except Exception:
            # Two processes creating the schema at once on PostgreSQL: the loser retries
            # once and finds it at head.
            if "images" not in inspect(engine).get_table_names():
                raise
            _upgrade(engine)
        _done.add(key)
    return engine
