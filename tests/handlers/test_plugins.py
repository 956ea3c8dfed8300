"""Plug-ins as real packages: the example run by a real worker; a broken one leaves the others and the web up."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from handlers import registry
from handlers.database import init_db
from tests.conftest import ROOT, SECRET, free_port, process_env, venv_bin, wait_for
from tests.processes import WORKER, gunicorn, rows, running
from tests.redoxygen_samples import MESSAGE_1, REPLY
from tests.throwaway_plugins import EXITS_ON_IMPORT, HANGS_ON_IMPORT, RAISES_ON_IMPORT, plugin_folder
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


# ----------------------------------------------------------------------------- a plug-in that cannot load
# A throwaway dist-info on PYTHONPATH (tests/throwaway_plugins.py): a real entry point, the venv untouched.


@pytest.fixture
def broken_plugin(tmp_path) -> Path:
    return plugin_folder(tmp_path / "plugins", "broken", RAISES_ON_IMPORT)


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def log_lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines() if path.exists() else []


def test_broken_plugin_leaves_the_web_up_degraded_and_the_worker_stores_the_receipt(
    broken_plugin, redis, redis_server, sqlite_url, tmp_path
):
    init_db(sqlite_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = process_env({"REDIS_URL": redis_server.url, "DATABASE_URL": sqlite_url, "WEBHOOK_SECRET": SECRET})
    env.update(HANDLERS="database,broken", PYTHONPATH=os.pathsep.join([str(broken_plugin), env["PYTHONPATH"]]))
    web_log, worker_log = tmp_path / "web.log", tmp_path / "worker.log"
    with web_log.open("w") as web_out, worker_log.open("w") as worker_out:
        web = subprocess.Popen(gunicorn(port), env=env, cwd=ROOT, stdout=web_out, stderr=subprocess.STDOUT)
        worker = subprocess.Popen(WORKER, env=env, cwd=ROOT, stdout=worker_out, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: web.poll() is None and answers(f"{base}/healthz"), timeout=60)
            # both gunicorn workers have built their app (each imported the plug-in) before the log is read
            wait_for(lambda: sum("Booting worker" in line for line in log_lines(web_log)) == 2, timeout=30)
            health = [requests.get(f"{base}/healthz", headers={"Connection": "close"}, timeout=5) for _ in range(8)]
            receipt = requests.post(
                f"{base}/redoxygen/receipt?token={SECRET}", json={"Messages": {"Count": 1, "1": MESSAGE_1}}, timeout=5
            )
            assert receipt.status_code == 200 and "<RESULT>000</RESULT>" in receipt.text
            wait_for(lambda: rows(sqlite_url, "select kind, status from sms_events") == [("receipt", "delivered")])
        finally:
            for proc in (web, worker):
                proc.send_signal(signal.SIGTERM)
            for proc in (web, worker):
                proc.wait(timeout=30)
    assert {r.status_code for r in health} == {200}  # degraded is not down: callbacks are accepted
    body = health[-1].json()
    assert (body["status"], body["redis"], body["handlers"]) == ("degraded", "ok", ["database", "broken"])
    assert list(body["broken"]) == ["broken"]
    reason = body["broken"]["broken"]
    assert reason.startswith("handler 'broken' cannot be loaded: RuntimeError: cannot reach https://plugin:***@")
    assert SECRET not in reason and "hunter2" not in reason and "[secret]" in reason
    web_lines, worker_lines = log_lines(web_log), log_lines(worker_log)
    warned = [line for line in web_lines if "handler 'broken' cannot be loaded" in line]
    assert len(warned) == 1, web_lines  # the master said it; neither gunicorn worker repeated it
    assert "WARNING" in warned[0] and "/healthz says degraded" in warned[0]
    assert any("handler 'broken' cannot be loaded" in line for line in worker_lines), worker_lines
    assert not [line for line in web_lines + worker_lines if SECRET in line or "hunter2" in line]


@pytest.mark.parametrize(
    "name,source,reason",
    [
        ("exits", EXITS_ON_IMPORT, "handler 'exits' cannot be loaded: it called sys.exit(3)"),
        ("hangs", HANGS_ON_IMPORT, "handler 'hangs' cannot be loaded: its import did not finish within 0.5 s"),
        ("number", "Handler = 42\n", "handler 'number' is 42, not a subclass of handlers.Handler"),
    ],
)
def test_a_plugin_that_exits_or_hangs_on_import_is_reported_not_obeyed(
    name, source, reason, tmp_path, monkeypatch, redis_server
):
    # Names of their own: a hung import still holds its module's import lock after the test.
    monkeypatch.syspath_prepend(str(plugin_folder(tmp_path / "plugins", name, source)))
    monkeypatch.setattr(registry, "IMPORT_TIMEOUT", 0.5)
    with pytest.raises(registry.BrokenHandler) as raised:
        registry.load_class(name)
    assert str(raised.value) == reason
    app = create_app({"REDIS_URL": redis_server.url, "HANDLERS": f"database,{name}", "WEBHOOK_SECRET": SECRET})
    answer = app.test_client().get("/healthz")
    assert answer.status_code == 200
    assert answer.get_json()["status"] == "degraded" and answer.get_json()["broken"] == {name: reason}


def test_an_unknown_name_is_degraded_too_and_redis_down_is_still_503(redis_server):
    up = create_app({"REDIS_URL": redis_server.url, "HANDLERS": "database,nosuch"}).test_client().get("/healthz")
    assert up.status_code == 200
    assert up.get_json()["status"] == "degraded"
    assert up.get_json()["broken"]["nosuch"].startswith("unknown handler 'nosuch' in HANDLERS; installed: database")
    down = create_app({"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "HANDLERS": "database,nosuch"})
    answer = down.test_client().get("/healthz")
    assert answer.status_code == 503 and answer.get_json()["status"] == "unavailable"


def test_healthz_is_ok_when_every_handler_loads(client):
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok" and "broken" not in body
