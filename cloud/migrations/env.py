"""Alembic environment: the connection comes from cloud.db.migrate (no alembic.ini, no URL here)."""

from alembic import context
from sqlmodel import SQLModel

import cloud.models  # noqa: F401  (registers the tables on SQLModel.metadata)

target_metadata = SQLModel.metadata


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through cloud.db.migrate(engine)")
    # Batch mode lets later revisions alter columns on SQLite, which has no ALTER COLUMN.
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run()
