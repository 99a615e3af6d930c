"""Engine and session setup from ``settings.database_url``.

SQLite gets WAL, a busy timeout and ``BEGIN IMMEDIATE`` for every transaction (pysqlite's
own transaction handling is switched off, as the SQLAlchemy docs describe for
"Serializable isolation / Savepoints / Transactional DDL"): a deferred read->write
upgrade fails at once in WAL mode and ignores the busy timeout, an immediate one waits.
Any other URL (PostgreSQL) is used as is.

Readers that must never queue behind a writer (the dashboard) use :func:`read_engine`: on
SQLite it reads in autocommit mode (WAL readers take no lock); elsewhere it is the writer's.

Engines are cached per URL and per process: a forked child (Celery prefork) gets its own.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from aidetect.config import get_settings, redact_url
from aidetect.errors import ConfigError

BUSY_TIMEOUT_S = 30.0

_lock = threading.Lock()
_engines: dict[tuple[int, str, str], Engine] = {}


def _sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # noqa: ANN001
        # Disable pysqlite's implicit BEGIN; we emit our own below.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # noqa: ANN001
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _parse_url(url: str) -> URL:
    """``url`` parsed, or :class:`ConfigError` with one line naming AIDETECT_DATABASE_URL."""
    try:
        return make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigError(
            f"AIDETECT_DATABASE_URL={redact_url(url)!r}: not a database URL "
            "(e.g. sqlite:////path/aidetect.sqlite or postgresql+psycopg://user@host/db)"
        ) from None


def _create(url: str, **kwargs: object) -> Engine:
    """``create_engine`` with an unknown dialect or a missing driver as one line."""
    try:
        return create_engine(url, **kwargs)  # type: ignore[arg-type]
    except ArgumentError as exc:  # NoSuchModuleError included: an unknown dialect or driver
        reason = f"unknown database kind {make_url(url).drivername!r}" if "plugin" in str(exc) else str(exc)
    except ImportError as exc:
        reason = f"its database driver is not installed ({exc.name or exc})"
    raise ConfigError(
        f"AIDETECT_DATABASE_URL={redact_url(url)!r}: {reason}; use sqlite:///PATH or postgresql+psycopg://..."
    ) from None


def make_engine(url: str) -> Engine:
    """A new engine for ``url`` (SQLite tuned as described in the module doc)."""
    parsed = _parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:" and not db.startswith("file:"):
            folder = Path(db).expanduser().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"AIDETECT_DATABASE_URL={redact_url(url)!r}: cannot create the database folder {folder} "
                    f"({exc.strerror or exc}); set AIDETECT_HOME or AIDETECT_DATABASE_URL"
                ) from None
        engine = _create(url, connect_args={"timeout": BUSY_TIMEOUT_S})
        _sqlite_hooks(engine)
        return engine
    return _create(url, pool_pre_ping=True)


def make_read_engine(url: str) -> Engine:
    """A new read-only-use engine: SQLite in autocommit (no BEGIN, no lock, never waits for
    a writer in WAL mode; usable from a worker thread); any other URL as :func:`make_engine`."""
    if _parse_url(url).get_backend_name() != "sqlite":
        return make_engine(url)
    engine = _create(url, connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # noqa: ANN001
        dbapi_conn.isolation_level = None  # autocommit: WAL reads take no lock
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cur.close()

    return engine


def _cached(kind: str, url: str | None) -> Engine:
    url = url or get_settings().database_url
    key = (os.getpid(), url, kind)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = make_engine(url) if kind == "write" else make_read_engine(url)
            _engines[key] = engine
        return engine


def get_engine(url: str | None = None) -> Engine:
    """The cached writer engine for ``url`` (default: the settings' database URL) in this process."""
    return _cached("write", url)


def read_engine(url: str | None = None) -> Engine:
    """The cached reader engine for ``url`` (see the module doc) in this process."""
    return _cached("read", url)


def reset_engines() -> None:
    """Forget engines inherited over fork (without closing the parent's connections) and
    dispose this process's own. Call in a freshly forked child, or between tests."""
    with _lock:
        for (pid, _url, _kind), engine in list(_engines.items()):
            engine.dispose(close=pid == os.getpid())
        _engines.clear()


def session_factory(url: str | None = None) -> sessionmaker[Session]:
    return sessionmaker(get_engine(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on error."""
    session = session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
