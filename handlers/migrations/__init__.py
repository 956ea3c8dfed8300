"""Alembic migrations of the database handler's tables, shipped inside the package (`smshooks initdb`)."""
