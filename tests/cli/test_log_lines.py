"""The log of real processes (gunicorn, `smshooks worker`): one line a record, one line a handler batch.

Output goes to files, not pipes: at LOG_LEVEL=DEBUG a worker writes more than a pipe holds.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT, SECRET, free_port, process_env, wait_for
from tests.processes import WORKER, gunicorn, rows, service, wait_until_up
from tests.redoxygen_samples import MESSAGE_1, REPLY
from webhooks import create_app
from webhooks.pipeline.queueing import queue_for

TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")
BATCH_LINE = re.compile(r"webhooks\.handler_jobs \w+ handler=(\S+) events=(\d+) outcome=(\w+) duration_ms=[\d.]+ job=")
# What RQ says about every job at INFO ("Worker …: smshooks: <description> (<id>)", then these).
RQ_JOB_LINES = ("Job OK", "Successfully completed", "result is kept", "result discarded", ": smshooks: ")


@contextmanager
def logging_to(tmp_path: Path, commands: dict[str, list[str]], env: dict[str, str]):
    """Start each command with its output in tmp_path/<name>.log; SIGTERM them all on the way out."""
    procs = {}
    for name, command in commands.items():
        with open(tmp_path / f"{name}.log", "wb") as out:
            procs[name] = subprocess.Popen(
                command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, process_group=0
            )
    try:
        yield procs
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_a_real_worker_logs_one_line_per_handler_batch_and_no_rq_job_lines(tmp_path, redis, redis_server, sqlite_url):
    port, base, env = service(redis_server, sqlite_url, {"HANDLERS": "database,tests.support_handlers:Recorder"})
    count = 60
    with logging_to(tmp_path, {"web": gunicorn(port), "worker": WORKER}, env) as procs:
        wait_until_up(base, list(procs.values()))
        with requests.Session() as session, ThreadPoolExecutor(6) as pool:  # concurrent: batches form
            statuses = list(
                pool.map(
                    lambda n: (
                        session.post(
                            f"{base}/redoxygen/receipt?token={SECRET}", json={**MESSAGE_1, "SMSId": n}, timeout=10
                        ).status_code
                    ),
                    range(count),
                )
            )
        assert statuses == [200] * count
        wait_for(lambda: rows(sqlite_url, "select count(*) from sms_events") == [(count,)], timeout=30)
        wait_for(lambda: redis.llen("test:recorder") == count, timeout=30)
        queue = queue_for(redis, "smshooks")
        wait_for(lambda: not (queue.count or queue.started_job_registry.count), timeout=30)
    worker_log, web_log = lines(tmp_path / "worker.log"), lines(tmp_path / "web.log")
    batches: dict[str, list[int]] = {}
    for line in worker_log:
        if match := BATCH_LINE.search(line):
            assert match.group(3) == "success", line
            batches.setdefault(match.group(1), []).append(int(match.group(2)))
    # One line per batch: the Recorder noted each batch it was given; the database got the same batches.
    recorded = sorted(int(n) for n in redis.lrange("test:recorder:batches", 0, -1))
    assert sorted(batches["tests.support_handlers:Recorder"]) == recorded
    assert sum(batches["database"]) == count
    assert len(batches["database"]) == len(recorded)
    for line in worker_log:
        assert not any(text in line for text in RQ_JOB_LINES), line
        assert " rq." not in line, line  # at INFO, RQ says nothing unless something is wrong
    # Beyond the batch lines: the worker's start-up line, and nothing per job.
    assert len(worker_log) == 2 * len(recorded) + 1, worker_log
    assert all(TEXT_LINE.match(line) for line in worker_log + web_log), worker_log + web_log
    assert not [line for line in web_log if "WARNING" in line or "ERROR" in line], web_log


@pytest.mark.parametrize("level,rq_lines", [("INFO", False), ("DEBUG", True)])
def test_rqs_per_job_lines_only_at_debug(env, redis, level, rq_lines):
    client = create_app(env).test_client()
    assert client.post(f"/redoxygen/reply?token={SECRET}", data=REPLY).status_code == 200
    result = subprocess.run(
        [*WORKER, "--burst"],
        env=process_env({**env, "LOG_LEVEL": level}),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert any(text in output for text in RQ_JOB_LINES) is rq_lines
    assert len([m for m in map(BATCH_LINE.search, output.splitlines()) if m]) == 1


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_failed_batch_is_one_line_with_its_traceback_and_no_secret(env, redis, log_format):
    client = create_app(env).test_client()
    assert client.post(f"/redoxygen/reply?token={SECRET}", data=REPLY).status_code == 200
    result = subprocess.run(
        [*WORKER, "--burst"],
        env=process_env(
            {**env, "HANDLERS": "tests.support_handlers:Leaky", "RETRY_INTERVALS": "none", "LOG_FORMAT": log_format}
        ),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert SECRET not in output
    with_traceback = [line for line in output.splitlines() if "Traceback" in line]
    assert len(with_traceback) == 1, output  # RQ's own copy of it is not logged a second time
    (line,) = with_traceback
    if log_format == "json":
        entries = [json.loads(line) for line in output.splitlines()]  # every line is one JSON object
        (failed,) = [e for e in entries if "exc" in e]
        assert failed["logger"] == "webhooks.handler_jobs" and failed["level"] == "ERROR"
        assert failed["message"].startswith("handler=tests.support_handlers:Leaky events=1 outcome=failure ")
        assert failed["exc"].endswith("ConnectionError: POST https://hooks.example.com/in?token=[secret] failed")
    else:
        assert all(TEXT_LINE.match(line) for line in output.splitlines()), output
        assert " ERROR handler=tests.support_handlers:Leaky events=1 outcome=failure " in line
        assert line.endswith("\\nConnectionError: POST https://hooks.example.com/in?token=[secret] failed")
    assert "exception raised while executing" not in output


def test_every_line_of_web_and_worker_is_json_with_log_format_json(tmp_path, redis, redis_server, sqlite_url):
    port, base, env = service(redis_server, sqlite_url, {"LOG_FORMAT": "json", "ACCESS_LOG": "1"})
    with logging_to(tmp_path, {"web": gunicorn(port), "worker": WORKER}, env) as procs:
        wait_until_up(base, list(procs.values()))
        assert requests.post(f"{base}/redoxygen/receipt?token={SECRET}", json=MESSAGE_1, timeout=5).status_code == 200
        wait_for(lambda: rows(sqlite_url, "select count(*) from sms_events") == [(1,)], timeout=20)
    web, worker = lines(tmp_path / "web.log"), lines(tmp_path / "worker.log")
    entries = [json.loads(line) for line in web + worker]
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    loggers = {e["logger"] for e in entries}
    assert {"gunicorn.error", "gunicorn.access", "webhooks.worker", "webhooks.handler_jobs"} <= loggers
    access = [e["message"] for e in entries if e["logger"] == "gunicorn.access"]
    assert any('"POST /redoxygen/receipt HTTP/1.1" 200' in m for m in access), access
    assert SECRET not in "\n".join(web + worker)


def test_the_web_apps_start_up_warning_is_said_once_not_once_per_gunicorn_worker(tmp_path, redis_server):
    port = free_port()
    env = process_env({"REDIS_URL": redis_server.url})
    env.pop("WEBHOOK_SECRET", None)
    command = gunicorn(port)
    command[command.index("--workers") + 1] = "3"
    with logging_to(tmp_path, {"web": command}, env) as procs:
        wait_until_up(f"http://127.0.0.1:{port}", list(procs.values()))
        wait_for(lambda: len([line for line in lines(tmp_path / "web.log") if "Booting worker" in line]) == 3)
        for _ in range(6):  # each worker has built its app by the time it answers
            assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    warnings = [line for line in lines(tmp_path / "web.log") if "WEBHOOK_SECRET is not set" in line]
    assert len(warnings) == 1, lines(tmp_path / "web.log")


def test_a_bad_setting_stops_gunicorn_with_one_line_before_any_worker(tmp_path, redis_server):
    # Left to the workers, two failing to boot together made gunicorn's halt raise again while it
    # reaped the second: a bare traceback on standard error (seen on CI). The master checks first.
    env = process_env({"REDIS_URL": redis_server.url, "PHONE_REGION": "XX", "WEB_CONCURRENCY": "4"})
    result = subprocess.run(gunicorn(free_port()), env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    output = (result.stdout + result.stderr).splitlines()
    assert result.returncode == 1, output
    assert all(TEXT_LINE.match(line) for line in output), output
    message = "PHONE_REGION must be an ISO country code such as 'AU', got 'XX'; the web is not started"
    assert [line for line in output if " ERROR " in line] == [line for line in output if line.endswith(message)]
    assert any(line.endswith(message) for line in output), output
    assert not any("Booting worker" in line or "Traceback" in line for line in output), output


def test_a_bad_console_setting_stops_gunicorn_without_showing_the_secret(tmp_path, redis_server):
    # CONSOLE_PASSWORD without SECRET_KEY: refused in the master, and the password is never printed.
    env = process_env({"REDIS_URL": redis_server.url, "WEBHOOK_SECRET": SECRET, "CONSOLE_PASSWORD": "pw-" + "x" * 20})
    env.pop("SECRET_KEY", None)
    result = subprocess.run(gunicorn(free_port()), env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "SECRET_KEY" in output and "the web is not started" in output, output
    assert "x" * 20 not in output and SECRET not in output
    assert "Booting worker" not in output
