"""Alembic environment: runs on the connection handed in by :func:`aidetect.store.init_db`
(``config.attributes["connection"]``), or on ``sqlalchemy.url`` when run by the alembic CLI."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from aidetect.store.tables import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:  # noqa: ANN001
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as conn:
        _run(conn)
