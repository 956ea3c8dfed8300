"""The forward handler end to end: callbacks in, a real `smshooks worker`, real receivers verifying every request."""

from __future__ import annotations

import subprocess
import time
from contextlib import contextmanager

import requests

from tests.conftest import SECRET, free_port, process_env, venv_bin, wait_for
from tests.local_services import smtp_server
from tests.processes import WORKER, gunicorn, running, wait_until_up
from tests.redoxygen_samples import REPLY
from tests.webhook_receiver import Receiver, receiver
from webhooks import create_app
from webhooks.pipeline import failures
from webhooks.pipeline.queueing import queue_for

SIGNING = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TOKEN = f"?token={SECRET}"


def receipt(sms_id: int, result: str = "0000") -> dict:
    message = {"SMSId": sms_id, "DestTn": "+61409000001", "Result": result, "Timestamp": "2026-12-01T10:00:00Z"}
    return {"Messages": {"Count": 1, "1": message}}


def reply(sms_id: int, text: str) -> dict:
    return {**REPLY, "SmsId": str(sms_id), "EmailId": f"e{sms_id}-{text}", "ReplyText": text}


def settings(redis_server, sqlite_url, urls: str, **extra: str) -> dict[str, str]:
    return {
        "REDIS_URL": redis_server.url,
        "DATABASE_URL": sqlite_url,
        "WEBHOOK_SECRET": SECRET,
        "HANDLERS": "forward",
        "FORWARD_URL": urls,
        "FORWARD_SECRET": SIGNING,
        "FORWARD_RETRY_INTERVALS": "1,1,1,1,1",
        **extra,
    }


@contextmanager
def worker(env: dict[str, str]):
    """A real `smshooks worker`, and the web app's own code (Flask's test client) to post callbacks with."""
    with running(WORKER, env=process_env(env)) as procs:
        yield create_app(env).test_client(), procs[0]


def test_each_event_arrives_once_signed_and_in_order_per_message(redis, redis_server, sqlite_url):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with receiver(SIGNING) as r:
        r.script_for["501"] = [(500, {})] * 3  # 501's first delivery fails three times, then succeeds
        env = process_env(settings(redis_server, sqlite_url, r.url))
        with running(gunicorn(port), WORKER, env=env) as procs:
            wait_until_up(base, procs)
            assert requests.post(f"{base}/redoxygen/receipt{TOKEN}", json=receipt(501), timeout=5).ok
            wait_for(lambda: r.requests, timeout=20)  # 501's delivery has failed once: it is being retried
            # Message 502 need not wait behind 501's retries (posted alone, so its job is its own) ...
            assert requests.post(f"{base}/redoxygen/receipt{TOKEN}", json=receipt(502, "2015"), timeout=5).ok
            wait_for(lambda: r.events(), timeout=20)
            # ... and message 501's reply must wait for its receipt.
            assert requests.post(f"{base}/redoxygen/reply{TOKEN}", data=reply(501, "YES"), timeout=5).ok
            wait_for(lambda: len(r.events()) == 3, timeout=30)
            time.sleep(1.5)  # nothing more comes
    assert not r.refused()
    arrived = [(e["message_id"], e["kind"], e["status"]) for e in r.events()]
    assert sorted(arrived) == [
        ("501", "receipt", "delivered"),
        ("501", "reply", "received"),
        ("502", "receipt", "failed"),
    ]
    assert arrived.index(("501", "receipt", "delivered")) < arrived.index(("501", "reply", "received"))
    assert arrived[0] == ("502", "receipt", "failed")  # it did not wait behind 501's retries
    assert len({e["event_id"] for e in r.events()}) == 3
    # The failed attempts and the one that got through are one delivery: one webhook-id.
    first = [x for x in r.requests if x["body"]["message_id"] == "501" and x["body"]["kind"] == "receipt"]
    assert [x["status"] for x in first] == [500, 500, 500, 200]
    assert len({x["id"] for x in first}) == 1
    assert len({x["id"] for x in r.accepted()}) == 3


def test_429_with_retry_after_is_retried_no_sooner(redis, redis_server, sqlite_url):
    with receiver(SIGNING) as r:
        r.script = [(429, {"Retry-After": "2"})]
        with worker(settings(redis_server, sqlite_url, r.url)) as (client, _):
            assert client.post(f"/redoxygen/receipt{TOKEN}", json=receipt(601)).status_code == 200
            wait_for(lambda: r.accepted(), timeout=30)
    first, second = r.requests
    assert (first["status"], second["status"]) == (429, 200) and first["id"] == second["id"]
    # FORWARD_RETRY_INTERVALS says 1 s; the receiver asked for 2. RQ's scheduler polls each second.
    assert 2.0 <= second["at"] - first["at"] < 6.0


def test_410_stops_deliveries_to_that_url_names_it_and_a_replay_delivers_later(redis, redis_server, sqlite_url):
    with receiver(SIGNING) as r, smtp_server() as (sink, smtp_url):
        r.script = [(410, {})]
        env = settings(redis_server, sqlite_url, r.url, FALLBACK_EMAIL_TO="ops@example.com", SMTP_URL=smtp_url)
        with worker(env) as (client, _):
            client.post(f"/redoxygen/receipt{TOKEN}", json=receipt(701))
            wait_for(lambda: sink.messages, timeout=30)
            client.post(f"/redoxygen/receipt{TOKEN}", json=receipt(702))
            client.post(f"/redoxygen/reply{TOKEN}", data=reply(702, "STOP"))
            queue = queue_for(redis, "smshooks")
            # Three events held back, in two or three jobs (one job may carry 702's receipt and reply).
            wait_for(lambda: sum(len(job.event_ids) for job in failures.failed(queue)) == 3, timeout=30)
            failed = _failed(env)
            assert len(r.requests) == 1  # only the one that answered 410: nothing was sent after it
            assert "gone" in failed
            time.sleep(1)
            assert len(sink.messages) == 1  # said once, loudly; not once per event held back
            _, mail = sink.messages[0]
            assert r.url in mail.get_body().get_content() and r.url in mail["Subject"]
            assert SIGNING.removeprefix("whsec_") not in mail.as_string()
            # The receiver is back: a replay clears the mark and delivers what waited, once each.
            command = [venv_bin("smshooks"), "replay", "--all"]
            replay = subprocess.run(command, env=process_env(env), capture_output=True, text=True, timeout=30)
            assert replay.returncode == 0, replay.stderr
            wait_for(lambda: len(r.events()) == 3, timeout=30)
            time.sleep(1)
    ids = sorted(e["message_id"] + e["kind"] for e in r.events())
    assert ids == ["701receipt", "702receipt", "702reply"]


def _failed(env: dict[str, str]) -> str:
    command = [venv_bin("smshooks"), "failed"]
    return subprocess.run(command, env=process_env(env), capture_output=True, text=True, timeout=30).stdout


def test_two_urls_one_down_the_other_keeps_receiving(redis, redis_server, sqlite_url):
    up = Receiver(SIGNING)
    down = Receiver(SIGNING)  # not started: connections to it are refused
    up.start()
    try:
        env = settings(redis_server, sqlite_url, f"{up.url},{down.url}", FORWARD_RETRY_INTERVALS="1,2,2,4,4,4,4,4,4")
        with worker(env) as (client, _):
            sent_at = []
            for n in range(8):
                client.post(f"/redoxygen/receipt{TOKEN}", json=receipt(800 + n))
                sent_at.append(time.monotonic())
                time.sleep(1)
            # While the second URL was down, the first got every event within a few seconds of it.
            assert len(up.events()) >= 7
            assert all(up.accepted()[i]["at"] - sent_at[i] < 4 for i in range(7))
            down.start()
            wait_for(lambda: len(down.events()) == 8, timeout=40)
            wait_for(lambda: len(up.events()) == 8, timeout=10)
            time.sleep(1)
    finally:
        up.stop()
        down.stop()
    for got in (up, down):
        assert sorted(e["message_id"] for e in got.events()) == [str(800 + n) for n in range(8)]
        assert not got.refused()


def test_a_gone_receiver_is_reported_to_sentry_once_without_the_secret(redis, redis_server, sqlite_url):
    from tests.sentry_stand_in import error_events, sentry_stand_in

    server, dsn = sentry_stand_in()
    try:
        with receiver(SIGNING) as r:
            r.default = 410
            env = settings(redis_server, sqlite_url, r.url + "?key=query-token-123", SENTRY_DSN=dsn)
            client = create_app(env).test_client()
            for n in range(3):
                client.post(f"/redoxygen/receipt{TOKEN}", json=receipt(900 + n))
            result = subprocess.run(
                [venv_bin("smshooks"), "worker", "--burst"], env=process_env(env), timeout=60, capture_output=True
            )
            assert result.returncode == 0, result.stderr[-2000:]
            logs = result.stdout + result.stderr
            assert b"answered 410 Gone" in logs and r.url.encode() in logs  # said loudly in the log too
            for secret in (SIGNING, SIGNING.removeprefix("whsec_"), "query-token-123"):
                assert secret.encode() not in logs, secret
        wait_for(error_events, timeout=10)
        time.sleep(1)
    finally:
        server.shutdown()
    reports = error_events()
    assert len(r.requests) == 1 and len(reports) == 1  # the 410, once; the two held back are not reported
    assert b"answered 410 Gone" in reports[0] and r.url.encode() in reports[0]
    for secret in (SIGNING, SIGNING.removeprefix("whsec_"), "query-token-123", SECRET):
        assert secret.encode() not in reports[0], secret


def test_a_retry_after_a_failure_part_way_resends_nothing_the_receiver_took(redis, redis_server, sqlite_url):
    messages = {str(i): {"SMSId": 1000 + i, "DestTn": "+61409000001", "Result": "0000"} for i in range(1, 6)}
    with receiver(SIGNING) as r:
        r.script_for["1003"] = [(500, {}), (500, {})]
        with worker(settings(redis_server, sqlite_url, r.url)) as (client, _):
            # One callback, five events: one dispatch batch, so one job carries them all.
            client.post(f"/redoxygen/receipt{TOKEN}", json={"Messages": {"Count": 5, **messages}})
            wait_for(lambda: len(r.events()) == 5, timeout=30)
            time.sleep(1)
    sent = [(x["body"]["message_id"], x["status"]) for x in r.requests]
    assert sent == [
        ("1001", 200),
        ("1002", 200),
        ("1003", 500),
        ("1003", 500),
        ("1003", 200),
        ("1004", 200),
        ("1005", 200),
    ]
