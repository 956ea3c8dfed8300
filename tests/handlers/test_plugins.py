"""examples/handler-plugin installed as a real package: discovered by entry point, run by a real worker."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys

import pytest

from handlers.database import init_db
from tests.conftest import ROOT, SECRET, process_env, venv_bin, wait_for
from tests.processes import WORKER, rows, running
from tests.redoxygen_samples import REPLY
from webhooks import create_app

PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]


@pytest.fixture(scope="module")
def plugin_installed(tmp_path_factory):
    """pip-installs a copy of the example (building it in place would leave build/ in the repo), offline."""
    source = tmp_path_factory.mktemp("plugin") / "handler-plugin"
    shutil.copytree(ROOT / "examples" / "handler-plugin", source)
    subprocess.run(
        [*PIP, "install", "--no-deps", "--no-build-isolation", "--no-index", str(source)], check=True, timeout=300
    )
    yield
    subprocess.run([*PIP, "uninstall", "-y", "smshooks-jsonl"], check=True, timeout=120)


def test_plugin_is_listed_and_receives_events_in_a_real_worker(
    plugin_installed, redis, redis_server, sqlite_url, tmp_path
):
    init_db(sqlite_url)
    out = tmp_path / "events.jsonl"
    env = process_env(
        {
            "REDIS_URL": redis_server.url,
            "DATABASE_URL": sqlite_url,
            "WEBHOOK_SECRET": SECRET,
            "HANDLERS": "database,jsonl",
            "JSONL_PATH": str(out),
            "JSONL_EVENTS": "reply",
        }
    )
    listed = subprocess.run([venv_bin("smshooks"), "handlers"], env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "jsonl (smshooks_jsonl:JsonLinesHandler)" in listed.stdout
    assert "  jsonl: reply; retries" in listed.stdout

    importlib.invalidate_caches()  # installed after this process started
    client = create_app(env).test_client()  # the web side accepts the plug-in's name too
    with running(WORKER, env=env):
        assert client.post(f"/redoxygen/receipt?token={SECRET}", json={"SMSId": 5, "Result": "0000"}).status_code == 200
        assert client.post(f"/redoxygen/reply?token={SECRET}", data=REPLY).status_code == 200
        wait_for(lambda: out.exists() and out.read_text().count("\n") >= 1, timeout=30)
        # the receipt went to the database only (JSONL_EVENTS=reply)
        wait_for(lambda: len(rows(sqlite_url, "select kind from sms_events")) == 2, timeout=30)
    [line] = out.read_text().splitlines()  # JSONL_EVENTS=reply: the receipt was not given to it
    event = json.loads(line)
    assert (event["kind"], event["sender"], event["text"]) == ("reply", "+61409000000", "Yes, see you at 10")


def test_plugin_with_bad_settings_is_reported_by_name_and_the_rest_run(
    plugin_installed, redis, redis_server, sqlite_url
):
    init_db(sqlite_url)
    env = process_env(
        {
            "REDIS_URL": redis_server.url,
            "DATABASE_URL": sqlite_url,
            "WEBHOOK_SECRET": SECRET,
            "HANDLERS": "jsonl,database",
            "RETRY_INTERVALS": "none",
        }
    )  # no JSONL_PATH
    with running(WORKER, env=env) as [worker]:
        client = create_app(env).test_client()
        assert client.post(f"/redoxygen/reply?token={SECRET}", data=REPLY).status_code == 200
        wait_for(lambda: rows(sqlite_url, "select kind from sms_events") == [("reply",)], timeout=30)
    log = worker.stdout.read()
    assert "handler 'jsonl' cannot start: JSONL_PATH must be set" in log
    assert "handlers: database" in log
