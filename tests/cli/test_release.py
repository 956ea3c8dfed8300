"""`smshooks release`, the Procfile's release step: a bad HANDLERS or setting fails the deploy, a good one migrates."""

from __future__ import annotations

import os
import subprocess

import pytest
from sqlalchemy import inspect

from handlers.database import make_engine
from tests.conftest import ROOT, SECRET, process_env, venv_bin
from tests.throwaway_plugins import RAISES_ON_IMPORT, plugin_folder

RELEASE = [venv_bin("smshooks"), "release"]


@pytest.fixture
def release_env(tmp_path, sqlite_url) -> dict[str, str]:
    """The release phase's environment: the app's config vars, a broken plug-in installed beside the built-ins."""
    env = process_env({"DATABASE_URL": sqlite_url, "WEBHOOK_SECRET": SECRET})
    plugins = plugin_folder(tmp_path / "plugins", "broken", RAISES_ON_IMPORT)
    env["PYTHONPATH"] = os.pathsep.join([str(plugins), env["PYTHONPATH"]])
    return env


def release(env: dict[str, str], **settings: str) -> subprocess.CompletedProcess:
    return subprocess.run(RELEASE, env={**env, **settings}, cwd=ROOT, capture_output=True, text=True, timeout=120)


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_good_handlers_pass_and_the_database_is_migrated(release_env, sqlite_url):
    result = release(release_env, HANDLERS="database,log")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == ["settings ok; handlers: database, log", "database ready"]
    assert {"sms_events", "sms_messages", "alembic_version"} <= tables(sqlite_url)
    again = release(release_env, HANDLERS="database,log")  # every deploy runs it
    assert again.returncode == 0, again.stdout + again.stderr


@pytest.mark.parametrize(
    "handlers,named",
    [
        ("database,broken", "handler 'broken' cannot be loaded: RuntimeError: cannot reach https://plugin:***@"),
        ("database,nosuch", "unknown handler 'nosuch' in HANDLERS; installed: broken, database, "),
    ],
)
def test_an_unknown_or_broken_handler_fails_the_release_and_nothing_is_migrated(
    release_env, sqlite_url, handlers, named
):
    result = release(release_env, HANDLERS=handlers)
    assert result.returncode == 1
    assert f"smshooks release: {named}" in result.stderr
    assert "1 problem(s); this release is refused, the running one keeps serving" in result.stderr
    assert "Traceback" not in result.stderr and SECRET not in result.stderr and "hunter2" not in result.stderr
    assert tables(sqlite_url) == set()  # checked before the migration, which did not run


def test_every_bad_setting_is_named_at_once(release_env):
    result = release(
        release_env,
        HANDLERS="database,broken,forward",
        DATABASE_EVENTS="receipts",  # the worker's policy for database
        LOG_FORMAT="xml",
        DIGITALEO_MODE="sometimes",
        WEB_CONCURRENCY="many",
        SENTRY_DSN="not-a-dsn",
        REDOXYGEN_STATUS_MAP="nonsense",  # read by the web and the worker (Runtime) alike
    )
    assert result.returncode == 1
    problems = [line.removeprefix("smshooks release: ") for line in result.stderr.splitlines()]
    assert problems[-1] == "8 problem(s); this release is refused, the running one keeps serving", result.stderr
    for expected in (
        "LOG_FORMAT must be 'text' or 'json', got 'xml'",
        "DIGITALEO_MODE must be one of",
        "WEB_CONCURRENCY must be a whole number, got 'many'",
        "SENTRY_DSN is not a Sentry DSN",
        "REDOXYGEN_STATUS_MAP: 'nonsense' must be code:status",
        "handler 'database' cannot start: DATABASE_EVENTS may name kinds and statuses",
        "handler 'broken' cannot be loaded: RuntimeError",
        "handler 'forward' cannot start: FORWARD_URL is not set",
    ):
        assert any(line.startswith(expected) for line in problems), (expected, result.stderr)


def test_a_bad_settings_value_fails_the_release(release_env):
    result = release(release_env, HANDLERS="database", RETRY_INTERVALS="soon")
    assert result.returncode == 1
    assert "smshooks release: RETRY_INTERVALS must be comma-separated seconds" in result.stderr


def test_without_the_database_handler_there_is_no_migration(release_env, sqlite_url):
    result = release(release_env, HANDLERS="log")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no database handler in HANDLERS: no migration" in result.stdout
    assert tables(sqlite_url) == set()


def test_initdb_still_migrates(release_env, sqlite_url):
    result = subprocess.run(
        [venv_bin("smshooks"), "initdb"], env=release_env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "database ready" in result.stdout, result.stdout + result.stderr
    assert "sms_events" in tables(sqlite_url)
