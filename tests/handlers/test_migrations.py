"""`smshooks initdb` runs Alembic: fresh databases, databases made before migrations, and no drift."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from handlers.database import DatabaseHandler, init_db, make_engine
from handlers.db_schema import metadata
from handlers.migrate import head


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, sqlite_url):
    return sqlite_url if request.param == "sqlite" else request.getfixturevalue("postgres_url")


def version(url: str) -> str:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("select version_num from alembic_version")).scalar_one()
    finally:
        engine.dispose()


def test_fresh_database_is_migrated_to_head_and_again_is_harmless(url):
    init_db(url)
    init_db(url)  # every release runs it
    assert version(url) == head()
    engine = make_engine(url)
    try:
        assert {"sms_events", "sms_messages"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_database_made_before_migrations_is_stamped_and_keeps_its_rows(url):
    from tests.handlers.test_database import receipt
    from webhooks.events import Status

    engine = make_engine(url)
    metadata.create_all(engine)  # what smshooks 0.1's initdb did
    engine.dispose()
    old = DatabaseHandler(url)
    old.handle_batch([receipt("m1", Status.DELIVERED, 1)])
    old.close()
    init_db(url)
    assert version(url) == head()
    handler = DatabaseHandler(url)
    try:
        handler.handle_batch([receipt("m2", Status.SENT, 2)])
        with handler.engine.connect() as conn:
            assert conn.execute(text("select count(*) from sms_events")).scalar_one() == 2
    finally:
        handler.close()


def test_migrations_make_exactly_the_schema_the_code_uses(url):
    # A change to db_schema.py without a migration fails here, not in someone's upgrade.
    init_db(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_a_database_at_0001_gets_overdue_since_and_keeps_its_rows(url):
    # What `smshooks initdb` does to a database made by the release before the receipt watchdog.
    from alembic import command

    from handlers.migrate import _config
    from tests.handlers.test_database import receipt
    from webhooks.events import Status

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            command.upgrade(_config(conn), "0001")
            assert "overdue_since" not in {c["name"] for c in inspect(conn).get_columns("sms_messages")}
            conn.execute(
                text(
                    "insert into sms_messages (provider, message_id, status, status_rank, final, status_at, updated_at)"
                    " values ('test', 'm0', 'sent', 3, false, '2026-11-01 09:00:00', '2026-11-01 09:00:00')"
                )
            )
    finally:
        engine.dispose()
    init_db(url)
    assert version(url) == head()
    handler = DatabaseHandler(url)
    try:
        handler.handle_batch([receipt("m0", Status.DELIVERED, 5)])
        with handler.engine.connect() as conn:
            assert conn.execute(text("select status, overdue_since from sms_messages")).one() == ("delivered", None)
    finally:
        handler.close()
