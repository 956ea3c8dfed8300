"""The `postgres_url` fixture: a PostgreSQL database of each test's own, never the shared `test` database."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from sqlalchemy import create_engine, inspect, text

from handlers.database import init_db
from tests.conftest import PG_URL
from webhooks.config import normalize_database_url


def table_names(url: str) -> set[str]:
    engine = create_engine(normalize_database_url(url))
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def test_postgres_url_is_a_new_empty_database_not_the_shared_one(postgres_url):
    name = database_name(postgres_url)
    assert name != database_name(PG_URL)
    assert name.startswith(f"smshooks_test_{os.getpid()}_")
    assert urlsplit(postgres_url).netloc == urlsplit(PG_URL).netloc  # the same server
    assert table_names(postgres_url) == set()
    init_db(postgres_url)
    assert {"sms_events", "sms_messages", "alembic_version"} <= table_names(postgres_url)


def test_two_databases_in_one_run_do_not_see_each_others_tables(postgres_database):
    first, second = postgres_database(), postgres_database()
    assert database_name(first) != database_name(second)
    init_db(first)
    engine = create_engine(normalize_database_url(second))
    try:
        with engine.begin() as conn:
            conn.execute(text("create table only_here (id integer)"))
    finally:
        engine.dispose()
    assert "sms_events" in table_names(first) and "only_here" not in table_names(first)
    assert table_names(second) == {"only_here"}
