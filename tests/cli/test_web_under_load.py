"""The web process under concurrent load, on real processes: many callbacks at once, a crash, a SIGTERM.

gunicorn's gevent workers keep many callbacks waiting on Redis at once, so with `appendfsync always`
one fsync covers many of them. These tests hold what that must not cost: a 200 only for what Redis
wrote to its append-only file before answering, nothing acknowledged lost when Redis is killed in
the middle of the load, and a SIGTERM under load that lets the callbacks in flight finish.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import requests
from redis import Redis

from tests.conftest import SECRET, RedisServer, free_port, process_env, wait_for
from tests.processes import gunicorn, running, wait_until_up
from webhooks.pipeline.queueing import INBOX

CLIENTS = 24  # concurrent clients, each on a keep-alive connection of its own
DURABLE = ("--save", "", "--appendonly", "yes", "--appendfsync", "always")


def receipt(sms_id: int) -> dict:
    return {"SMSId": sms_id, "DestTn": "+61409000000", "Result": "0000", "ResultText": "Delivered"}


class Load:
    """CLIENTS threads posting distinct receipts until stopped; what each answer was, by SMSId."""

    def __init__(self, base: str) -> None:
        self.url = f"{base}/redoxygen/receipt?token={SECRET}"
        self.answers: dict[int, int | str] = {}  # SMSId -> HTTP status, or the connection error's name
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._post_from, args=(n,)) for n in range(CLIENTS)]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)

    def _post_from(self, n: int) -> None:
        sms_id = 1_000_000 * (n + 1)
        with requests.Session() as session:  # keep-alive, as wrk and most providers' clients do
            while not self._stop.is_set():
                sms_id += 1
                try:
                    answer: int | str = session.post(
                        self.url, json=receipt(sms_id), headers={"Accept": "application/json"}, timeout=30
                    ).status_code
                except requests.RequestException as err:
                    answer = type(err).__name__
                    time.sleep(0.05)
                self.answers[sms_id] = answer

    def acknowledged(self) -> set[str]:
        return {str(i) for i, answer in self.answers.items() if answer == 200}


def inbox_ids(redis: Redis) -> set[str]:
    return {json.loads(item)["message_id"] for item in redis.lrange(INBOX, 0, -1)}


def test_every_200_survives_redis_killed_under_concurrent_load(tmp_path):
    server = RedisServer(tmp_path, args=DURABLE)
    server.start()
    port = free_port()
    env = process_env({"REDIS_URL": server.url, "WEBHOOK_SECRET": SECRET})
    try:
        with running(gunicorn(port), env=env) as [web]:
            base = f"http://127.0.0.1:{port}"
            wait_until_up(base, [web])
            with Load(base) as load:
                wait_for(lambda: len(load.acknowledged()) >= 300, timeout=60, interval=0.05)
                server.proc.kill()  # SIGKILL, callbacks in flight: what was answered 200 must be in the file
                server.proc.wait()
                time.sleep(1)
                load.stop()
            server.start()  # from its append-only file
            stored = inbox_ids(Redis.from_url(server.url))
            acknowledged = load.acknowledged()
            answers = set(load.answers.values())
    finally:
        server.stop()
    assert len(acknowledged) >= 300
    assert acknowledged <= stored, f"{len(acknowledged - stored)} acknowledged callbacks lost"
    assert 503 in answers  # Redis gone: the callbacks after it were refused for a retry, not taken
    assert not {a for a in answers if isinstance(a, int) and a >= 500} - {503}


def test_sigterm_under_load_answers_what_is_in_flight_and_stops(tmp_path, redis_server):
    port = free_port()
    env = process_env({"REDIS_URL": redis_server.url, "WEBHOOK_SECRET": SECRET})
    redis = Redis.from_url(redis_server.url)
    redis.flushall()
    with running(gunicorn(port), env=env) as [web]:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(base, [web])
        with Load(base) as load:
            wait_for(lambda: len(load.acknowledged()) >= 300, timeout=60, interval=0.05)
            started = time.monotonic()
            os.killpg(web.pid, signal.SIGTERM)  # as Heroku does: every process of the dyno
            web.wait(timeout=40)
            elapsed = time.monotonic() - started
            load.stop()
    stored = inbox_ids(redis)
    acknowledged = load.acknowledged()
    statuses = {a for a in load.answers.values() if isinstance(a, int)}
    assert web.returncode == 0
    assert elapsed < 10, f"an idle-ish gunicorn took {elapsed:.1f} s to stop after SIGTERM"
    assert acknowledged <= stored, f"{len(acknowledged - stored)} acknowledged callbacks lost"
    assert statuses == {200}, statuses  # no request cut with a 5xx: the rest found the port closed
    # Once the master is gone nothing more is taken: every later attempt failed to connect.
    assert set(load.answers.values()) - {200} <= {"ConnectionError"}
