"""Alembic's environment: always run from `handlers.database.init_db` with an open connection."""

from __future__ import annotations

from alembic import context

from handlers.db_schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection, target_metadata=metadata, render_as_batch=connection.dialect.name == "sqlite"
)  # SQLite ALTERs by copying tables
with context.begin_transaction():
    context.run_migrations()
