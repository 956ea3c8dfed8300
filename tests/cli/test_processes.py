"""End to end on real processes: gunicorn and `smshooks worker` (and `smshooks run`), over HTTP."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
import requests

from handlers.database import init_db
from tests.conftest import ROOT, SECRET, free_port, process_env, processes, venv_bin, wait_for
from tests.processes import WORKER, gunicorn, rows, running, service, wait_until_up
from tests.redoxygen_samples import MESSAGE_1, REPLY
from webhooks.cli.run import ROUTES
from webhooks.pipeline.queueing import queue_for


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, sqlite_url):
    url = sqlite_url if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    init_db(url)
    return url


def test_receipt_and_reply_reach_the_database(redis, redis_server, database_url):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = process_env({"REDIS_URL": redis_server.url, "DATABASE_URL": database_url, "WEBHOOK_SECRET": SECRET})
    with running(gunicorn(port), WORKER, env=env) as procs:
        wait_until_up(base, procs)
        receipt = requests.post(
            f"{base}/redoxygen/receipt?token={SECRET}", json={"Messages": {"Count": 1, "1": MESSAGE_1}}, timeout=5
        )
        reply = requests.post(f"{base}/redoxygen/reply?token={SECRET}", data=REPLY, timeout=5)
        assert receipt.status_code == reply.status_code == 200
        assert "<RESULT>000</RESULT>" in receipt.text and "<RESULT>000</RESULT>" in reply.text
        stored = wait_for(lambda: len(rows(database_url, "select kind from sms_events")) == 2, timeout=15)
        assert stored
    events = rows(
        database_url, "select kind, status, message_id, recipient, sender, text from sms_events order by kind"
    )
    assert events == [
        ("receipt", "delivered", "123", "+61111222333", None, None),
        ("reply", "received", "123", None, "+61409000000", "Yes, see you at 10"),
    ]
    assert rows(database_url, "select status from sms_messages") == [("replied",)]


def test_chunked_body_over_limit_through_gunicorn_is_413(redis, redis_server, sqlite_url):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = process_env({"REDIS_URL": redis_server.url, "DATABASE_URL": sqlite_url, "WEBHOOK_SECRET": SECRET})
    with running(gunicorn(port), env=env) as procs:
        wait_until_up(base, procs)

        def chunks(kib: int):  # a generator body: requests sends it chunked, without Content-Length
            yield b'{"SMSId": 1, "Result": "0000", "pad": "'
            for _ in range(kib):
                yield b"a" * 1024
            yield b'"}'

        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        small = requests.post(f"{base}/redoxygen/receipt?token={SECRET}", data=chunks(60), headers=headers, timeout=5)
        assert small.status_code == 200, small.text
        big = requests.post(f"{base}/redoxygen/receipt?token={SECRET}", data=chunks(80), headers=headers, timeout=5)
        assert big.status_code == 413, big.text
        assert big.json()["error"]
    assert redis.llen("smshooks:inbox") == 1


def test_scheduled_retry_runs_in_the_real_worker(redis, redis_server, sqlite_url):
    # RQ only runs a retry with an interval if a scheduler is running: the worker must start one.
    port, base, env = service(
        redis_server,
        sqlite_url,
        {
            "HANDLERS": "database,tests.support_handlers:Flaky",
            "RETRY_INTERVALS": "1,1",
        },
    )
    redis.set("test:flaky:failures", 1)
    with running(gunicorn(port), WORKER, env=env) as procs:
        wait_until_up(base, procs)
        requests.post(f"{base}/redoxygen/receipt?token={SECRET}", json=MESSAGE_1, timeout=5)
        wait_for(lambda: redis.llen("test:flaky") == 1, timeout=20)
    assert int(redis.get("test:flaky:attempts")) == 2


def test_worker_survives_a_redis_restart(redis, redis_server, sqlite_url):
    port, base, env = service(redis_server, sqlite_url)
    with running(gunicorn(port), WORKER, env=env) as procs:
        wait_until_up(base, procs)
        redis_server.stop()
        time.sleep(1.5)
        assert requests.post(f"{base}/redoxygen/receipt?token={SECRET}", json=MESSAGE_1, timeout=10).status_code == 503
        redis_server.start()
        for p in procs:
            assert p.poll() is None, f"{p.args[0]} quit when Redis went away: {p.stdout.read()[-3000:]}"
        wait_for(
            lambda: (
                requests.post(f"{base}/redoxygen/receipt?token={SECRET}", json=MESSAGE_1, timeout=5).status_code == 200
            ),
            timeout=10,
        )
        wait_for(lambda: rows(sqlite_url, "select count(*) from sms_events") == [(1,)], timeout=40)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_idle_worker_stops_promptly_on_signal(redis, redis_server, sqlite_url, sig):
    env = process_env({"REDIS_URL": redis_server.url, "DATABASE_URL": sqlite_url})
    with running(WORKER, env=env) as [worker]:
        wait_for(lambda: redis.smembers("rq:workers"), timeout=15)  # registered: it is idle in its loop
        started = time.monotonic()
        worker.send_signal(sig)
        assert worker.wait(timeout=10) == 0
        assert time.monotonic() - started < 5
        assert "restarting" not in worker.stdout.read()


@pytest.mark.parametrize("attempt", range(3))
def test_signal_right_after_registration_stops_the_worker_and_its_scheduler(redis, redis_server, sqlite_url, attempt):
    # RQ registers the worker and starts its scheduler process before it installs its signal
    # handlers: a SIGINT in between used to leave the worker waiting forever on that child.
    env = process_env({"REDIS_URL": redis_server.url, "DATABASE_URL": sqlite_url})
    with running(WORKER, env=env) as [worker]:
        wait_for(lambda: redis.smembers("rq:workers"), timeout=15, interval=0.005)
        worker.send_signal(signal.SIGINT)
        assert worker.wait(timeout=10) == 0, worker.stdout.read()[-2000:]
    assert not [pid for pid, (parent, _) in processes().items() if parent == worker.pid]
    wait_for(lambda: not redis.exists("rq:scheduler-lock:smshooks"), timeout=10)


@pytest.mark.parametrize(
    "handlers,message",
    [
        # With one handler that works the worker runs it (tests/test_handler_settings.py); with none, it stops.
        ("nosuch", "unknown handler 'nosuch' in HANDLERS; installed: database"),
        ("tests.support_handlers:Broken", "BROKEN_URL must be an http:// URL, got None"),
        ("tests.support_handlers:NotAHandler", "not a subclass of handlers.Handler"),
        ("tests.no_such_module:X", "cannot be loaded: ModuleNotFoundError"),
    ],
)
def test_bad_handler_stops_the_worker_with_a_clear_message(redis_server, sqlite_url, handlers, message):
    env = process_env({"REDIS_URL": redis_server.url, "DATABASE_URL": sqlite_url, "HANDLERS": handlers})
    result = subprocess.run(WORKER, env=env, cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_handler_leaves_the_web_up_and_degraded(redis_server, sqlite_url):
    # The web needs no handler to accept callbacks; `smshooks release` is what refuses the name (test_release.py).
    port = free_port()
    env = process_env({"REDIS_URL": redis_server.url, "DATABASE_URL": sqlite_url, "HANDLERS": "database,nosuch"})
    with running(gunicorn(port), env=env) as procs:
        wait_until_up(f"http://127.0.0.1:{port}", procs)
        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    assert health.status_code == 200
    assert health.json()["status"] == "degraded"
    assert health.json()["broken"]["nosuch"].startswith("unknown handler 'nosuch' in HANDLERS; installed: database")


def test_smshooks_run_owns_its_redis_and_sqlite(tmp_path):
    """README command 1 minus the install: one process tree with Redis (AOF on), web, worker and SQLite."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = process_env(
        {"PORT": str(port), "HOST": "127.0.0.1", "WEBHOOK_SECRET": SECRET, "SMSHOOKS_HOME": str(tmp_path / "home")}
    )
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    with running([venv_bin("smshooks"), "run"], env=env, cwd=tmp_path) as [proc]:
        wait_until_up(base, [proc])
        assert requests.post(f"{base}/redoxygen/receipt?token={SECRET}", json=MESSAGE_1, timeout=5).status_code == 200
        db = f"sqlite:///{tmp_path / 'smshooks.db'}"
        wait_for(lambda: (tmp_path / "smshooks.db").exists() and rows(db, "select count(*) from sms_events") == [(1,)])
        assert (tmp_path / "home" / "appendonlydir").is_dir(), "the embedded Redis must keep an append-only file"
        import os

        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole foreground group gets it
        output, _ = proc.communicate(timeout=40)
    assert f"{base.replace('127.0.0.1', 'localhost')}/redoxygen/receipt?token=<WEBHOOK_SECRET>" in output
    for _, route in ROUTES:
        assert f"{route}?token=<WEBHOOK_SECRET>" in output
    assert SECRET not in output
    assert "Redis unavailable" not in output, "Redis was stopped before the worker"
    assert proc.returncode == 0
    leftover = [cmd for _, cmd in processes().values() if str(tmp_path / "home") in cmd]
    assert not leftover, f"outlived smshooks run: {leftover}"


def test_smshooks_run_gives_up_on_a_crash_loop(tmp_path, redis_server):
    """A web process that can never start is not restarted forever."""
    env = process_env(
        {
            "PORT": str(free_port()),
            "HOST": "127.0.0.1",
            "REDIS_URL": redis_server.url,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
            "GUNICORN_CMD_ARGS": "--workers=not-a-number",
        }
    )
    result = subprocess.run(
        [venv_bin("smshooks"), "run"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert "web keeps exiting" in result.stderr


def test_smshooks_run_says_when_its_port_is_taken(tmp_path, redis_server):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = process_env({"PORT": str(port), "HOST": "127.0.0.1", "REDIS_URL": redis_server.url})
        result = subprocess.run(
            [venv_bin("smshooks"), "run"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30
        )
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_two_workers_under_a_burst_handle_every_event_exactly_once(redis, redis_server, sqlite_url):
    from concurrent.futures import ThreadPoolExecutor

    port, base, env = service(redis_server, sqlite_url, {"HANDLERS": "database,tests.support_handlers:Recorder"})
    ids = [n % 250 for n in range(400)]  # 250 messages, 150 of them delivered twice
    with running(gunicorn(port), WORKER, WORKER, env=env) as procs:
        wait_until_up(base, procs)
        with requests.Session() as session, ThreadPoolExecutor(8) as pool:
            statuses = list(
                pool.map(
                    lambda n: (
                        session.post(
                            f"{base}/redoxygen/receipt?token={SECRET}", json={**MESSAGE_1, "SMSId": n}, timeout=10
                        ).status_code
                    ),
                    ids,
                )
            )
        assert statuses == [200] * len(ids)
        wait_for(lambda: rows(sqlite_url, "select count(*) from sms_events") == [(250,)], timeout=30)
        wait_for(lambda: redis.llen("test:recorder") >= 250, timeout=30)
        # Idle (nothing queued, running or in the inbox): a job run twice would have recorded twice by now.
        queue = queue_for(redis, "smshooks")
        wait_for(
            lambda: not (queue.count or queue.started_job_registry.count or redis.llen("smshooks:inbox")), timeout=30
        )
    recorded = redis.lrange("test:recorder", 0, -1)
    assert len(recorded) == len(set(recorded)) == 250
    assert rows(sqlite_url, "select count(distinct message_id) from sms_messages") == [(250,)]


def test_gunicorn_leaves_no_control_socket_folder(tmp_path, redis_server, sqlite_url):
    port = free_port()
    env = process_env({"REDIS_URL": redis_server.url, "DATABASE_URL": sqlite_url, "HOME": str(tmp_path)})
    env.pop("XDG_RUNTIME_DIR", None)
    with running(gunicorn(port), env=env) as procs:
        wait_until_up(f"http://127.0.0.1:{port}", procs)
    assert not (tmp_path / ".gunicorn").exists()


def test_job_of_a_worker_killed_mid_job_is_run_again(redis, redis_server, sqlite_url):
    """SIGKILL leaves the job "started"; seconds later (its lease, recovery.py) the next worker runs it again."""
    import os

    from webhooks.pipeline.recovery import LEASE

    # Production timeouts (JOB_TIMEOUT 60 s, sweeps every 30 s): RQ's own sweep would take two minutes.
    port, base, env = service(
        redis_server,
        sqlite_url,
        {
            "HANDLERS": "database,tests.support_handlers:Slow",
            "RETRY_INTERVALS": "0,0",
        },
    )
    redis.set("test:slow:block", 1)
    with running(gunicorn(port), WORKER, env=env) as (web, first_worker):
        wait_until_up(base, [web, first_worker])
        assert requests.post(f"{base}/redoxygen/receipt?token={SECRET}", json=MESSAGE_1, timeout=5).status_code == 200
        wait_for(lambda: redis.get("test:slow:attempts") == b"1", timeout=20)
        os.killpg(first_worker.pid, signal.SIGKILL)  # the worker and its scheduler, mid-job
        first_worker.wait()
        redis.delete("test:slow:block")
        started = time.monotonic()
        with running(WORKER, env=env):
            wait_for(lambda: redis.llen("test:slow") == 1, timeout=LEASE + 20, interval=0.1)
            recovered = time.monotonic() - started
            queue = queue_for(redis, "smshooks")
            wait_for(lambda: not (queue.count or queue.started_job_registry.count), timeout=10)
            time.sleep(1)  # a second run would land now
    assert recovered < LEASE + 10, f"run again {recovered:.1f} s after the new worker started"
    assert redis.llen("test:slow") == 1
    assert int(redis.get("test:slow:attempts")) == 2
    assert rows(sqlite_url, "select count(*) from sms_events") == [(1,)]


def test_smshooks_run_with_a_bad_setting_starts_nothing(tmp_path):
    env = process_env(
        {
            "PORT": str(free_port()),
            "HOST": "127.0.0.1",
            "WEBHOOK_SECRET": "short",
            "SMSHOOKS_HOME": str(tmp_path / "home"),
        }
    )
    env.pop("REDIS_URL", None)
    result = subprocess.run(
        [venv_bin("smshooks"), "run"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "WEBHOOK_SECRET must be at least 16 characters" in result.stderr
    assert not [cmd for _, cmd in processes().values() if str(tmp_path / "home") in cmd]
    assert not (tmp_path / "home" / "redis.log").exists(), "a Redis was started before the settings were checked"


def test_embedded_redis_fsync_policy_is_checked_before_anything_starts():
    from webhooks.cli.run import persistence, redis_command
    from webhooks.config import ConfigError

    assert persistence(None)[persistence(None).index("--appendfsync") + 1] == "always"
    assert persistence("everysec")[persistence("everysec").index("--appendfsync") + 1] == "everysec"
    assert "--appendonly" in redis_command(ROOT, ROOT / "x.sock", "everysec")
    with pytest.raises(ConfigError, match="REDIS_APPENDFSYNC"):
        persistence("no")


def test_the_urls_smshooks_run_prints_are_routes_of_the_app(app):
    served = {rule.rule for rule in app.url_map.iter_rules()}
    assert {route for _, route in ROUTES} <= served
