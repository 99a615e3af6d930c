"""The store: the one package that imports SQLAlchemy.

``tables`` (ORM), ``engine`` (writer and reader engines), ``migrate`` (Alembic, shipped in
the package), ``writes`` (every write), ``results`` (result rows for the CLI, exports and
the dashboard), ``status`` (small reads about the work), ``model_versions`` (which model
the workers use). SQLite by default (WAL, busy timeout, BEGIN IMMEDIATE); any SQLAlchemy URL
in ``AIDETECT_DATABASE_URL`` (PostgreSQL tested) works too."""

from aidetect.store.engine import get_engine, read_engine, reset_engines, session_scope
from aidetect.store.migrate import init_db
from aidetect.store.tables import STATUSES, Base, File, Image, ModelVersion, Prediction, WorkerBeat

__all__ = [
    "STATUSES",
    "Base",
    "File",
    "Image",
    "ModelVersion",
    "Prediction",
    "WorkerBeat",
    "get_engine",
    "init_db",
    "read_engine",
    "reset_engines",
    "session_scope",
]
