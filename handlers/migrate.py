"""`alembic upgrade head` run from code, with the scripts shipped in `handlers/migrations/`.

A database made before migrations existed (by `create_all`, smshooks 0.1) has the
tables but no `alembic_version`: it is stamped at the first revision, which is
exactly what create_all made, and upgraded from there.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Engine

SCRIPTS = Path(__file__).with_name("migrations")
BASELINE = "0001"  # the schema smshooks 0.1 made with create_all


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision shipped with this smshooks."""
    return ScriptDirectory(str(SCRIPTS)).get_current_head() or ""


def upgrade(engine: Engine) -> None:
    """Create or migrate the tables to the newest revision."""
    with engine.begin() as connection:
        config = _config(connection)
        tables = set(inspect(connection).get_table_names())
        if "sms_events" in tables and "alembic_version" not in tables:
            command.stamp(config, BASELINE)
        command.upgrade(config, "head")
