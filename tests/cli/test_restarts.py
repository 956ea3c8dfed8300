"""Dyno restarts on real processes: `smshooks worker` on SIGTERM and after a SIGKILL, with a slow handler.

Heroku sends SIGTERM to every process, SIGKILL 30 s later. (A new worker started right after a
SIGKILL: `test_job_of_a_worker_killed_mid_job_is_run_again` in tests/cli/test_processes.py.)
The receipt is stored through the app in this process; real worker processes dispatch and handle
it. `tests.support_handlers:Slow` counts its attempts and then waits while `test:slow:block`
exists; it records the events once past the wait, so `test:slow` counts completed handlings.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from redis import Redis

from tests.conftest import SECRET, process_env, wait_for
from tests.processes import WORKER, rows, running
from tests.redoxygen_samples import MESSAGE_1
from webhooks import create_app
from webhooks.cli.worker import STOP_GRACE
from webhooks.pipeline.queueing import queue_for
from webhooks.pipeline.recovery import LEASE, RENEW_EVERY

SLOW = "database,tests.support_handlers:Slow"


@pytest.fixture
def slow_env(env, redis_server):
    # No retries: a run that failed instead of being requeued would show as a missing delivery.
    return process_env({**env, "HANDLERS": SLOW, "RETRY_INTERVALS": "none", "REDIS_URL": redis_server.url})


def receive(env: dict[str, str], redis: Redis) -> None:
    """Store one receipt and block the slow handler; returns once a worker is in the middle of its job."""
    redis.set("test:slow:block", 1)
    assert create_app(env).test_client().post(f"/redoxygen/receipt?token={SECRET}", json=MESSAGE_1).status_code == 200


def in_the_job(redis: Redis, attempt: int = 1) -> None:
    wait_for(lambda: redis.get("test:slow:attempts") == str(attempt).encode(), timeout=30, interval=0.05)


def worker_names(redis: Redis) -> set[str]:
    return {k.decode().removeprefix("rq:worker:") for k in redis.smembers("rq:workers")}


def kill(proc) -> None:
    """SIGKILL the worker and its scheduler: a crash, or a platform that ran out of patience."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def handled_once(redis: Redis, database_url: str, attempts: int) -> None:
    queue = queue_for(redis, "smshooks")
    wait_for(lambda: not (queue.count or queue.started_job_registry.count), timeout=15)
    assert redis.llen("test:slow") == 1
    assert int(redis.get("test:slow:attempts")) == attempts
    assert rows(database_url, "select count(*) from sms_events") == [(1,)]
    assert queue.failed_job_registry.count == 0


def test_sigterm_mid_job_lets_the_job_finish_and_stops(slow_env, redis: Redis, sqlite_url):
    receive(slow_env, redis)
    with running(WORKER, env=slow_env) as [worker]:
        in_the_job(redis)
        worker.send_signal(signal.SIGTERM)
        time.sleep(1)
        assert worker.poll() is None, "it left its job"
        redis.delete("test:slow:block")
        assert worker.wait(timeout=10) == 0
    handled_once(redis, sqlite_url, attempts=1)
    assert worker_names(redis) == set()


def test_a_job_still_running_after_the_grace_goes_back_and_the_worker_exits_before_sigkill(
    slow_env, redis: Redis, sqlite_url
):
    receive(slow_env, redis)
    with running(WORKER, env=slow_env) as [worker]:
        in_the_job(redis)
        [name] = worker_names(redis)
        sent = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0, "Heroku would SIGKILL it now"
        took = time.monotonic() - sent
        output = worker.stdout.read()
    assert STOP_GRACE - 1 < took < 28, output
    assert "back on the queue" in output
    queue = queue_for(redis, "smshooks")
    [job_id] = queue.job_ids  # waiting for the next worker, not lost among the started
    assert job_id.startswith("handle-tests_support_handlers_Slow")
    assert queue.started_job_registry.count == 0
    assert not redis.exists(f"rq:worker:{name}")
    redis.delete("test:slow:block")
    with running(WORKER, env=slow_env):
        wait_for(lambda: redis.llen("test:slow") == 1, timeout=20)
        handled_once(redis, sqlite_url, attempts=2)


def test_a_starting_worker_takes_back_a_dead_workers_job_first_thing(slow_env, redis: Redis, sqlite_url):
    receive(slow_env, redis)
    with running(WORKER, env=slow_env) as [first]:
        in_the_job(redis)
        [name] = worker_names(redis)
        kill(first)
    wait_for(lambda: not redis.exists(f"rq:worker:{name}"), timeout=LEASE + 5)
    redis.delete("test:slow:block")
    started = time.monotonic()
    with running(WORKER, env=slow_env):
        wait_for(lambda: redis.llen("test:slow") == 1, timeout=20, interval=0.1)
        recovered = time.monotonic() - started
        handled_once(redis, sqlite_url, attempts=2)
    assert recovered < 8  # the process's start-up, then its first maintenance pass


def test_a_live_workers_long_job_is_never_taken_from_it(slow_env, redis: Redis, sqlite_url):
    # Two workers, one busy past several leases: the other's recovery passes must leave its job alone.
    receive(slow_env, redis)
    with running(WORKER, WORKER, env=slow_env):
        in_the_job(redis)
        queue = queue_for(redis, "smshooks")
        [running_job] = queue.started_job_registry.get_job_ids()
        deadline = time.monotonic() + LEASE + 3 * RENEW_EVERY
        while time.monotonic() < deadline:
            assert queue.started_job_registry.get_job_ids() == [running_job]
            assert redis.get("test:slow:attempts") == b"1"
            time.sleep(0.5)
        redis.delete("test:slow:block")
        wait_for(lambda: redis.llen("test:slow") == 1, timeout=10)
        handled_once(redis, sqlite_url, attempts=1)
