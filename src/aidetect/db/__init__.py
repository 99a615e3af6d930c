"""The store: SQLAlchemy 2.x models, engine/session setup, Alembic migrations, queries and
the model-version registry. SQLite by default (WAL, busy timeout, BEGIN IMMEDIATE);
any SQLAlchemy URL in ``AIDETECT_DATABASE_URL`` (PostgreSQL tested) works too."""

from aidetect.db.engine import get_engine, reset_engines, session_scope
from aidetect.db.migrate import init_db
from aidetect.db.models import STATUSES, Base, Image, ModelVersion, Prediction, WorkerBeat

__all__ = [
    "STATUSES",
    "Base",
    "Image",
    "ModelVersion",
    "Prediction",
    "WorkerBeat",
    "get_engine",
    "init_db",
    "reset_engines",
    "session_scope",
]
