"""/metrics: callbacks, events, handler outcomes, latency, queues and API calls, scraped for real.

Web counters in this process are shared by every test (prometheus_client keeps them per
process), so web-side assertions compare a scrape before with one after. Worker-side
series live in Redis, which the `redis` fixture empties for every test.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import tempfile
import time
from pathlib import Path

import requests
from redis import Redis

from handlers.database import init_db
from tests.conftest import SECRET, free_port, process_env, run_worker, wait_for
from tests.processes import WORKER, gunicorn, running, wait_until_up
from tests.redoxygen_samples import MESSAGE_1, REPLY
from tests.scraping import parse, scrape, value
from webhooks import create_app
from webhooks.pipeline.queueing import queue_for

JSON = {"Accept": "application/json"}
RECEIPT = f"/redoxygen/receipt?token={SECRET}"


def callbacks(samples, outcome: str, code: str, provider: str = "redoxygen") -> float:
    return value(samples, "smshooks_callbacks_total", provider=provider, outcome=outcome, code=code)


def test_metrics_needs_the_secret(client):
    for response in (client.get("/metrics"), client.get("/metrics?token=wrong-but-long-enough")):
        assert response.status_code == 401
        assert response.get_json()["error"]
        assert SECRET not in response.get_data(as_text=True)
    auth = base64.b64encode(f"prometheus:{SECRET}".encode()).decode()
    assert client.get("/metrics", headers={"Authorization": f"Basic {auth}"}).status_code == 200
    assert client.get(f"/metrics?token={SECRET}").status_code == 200


def test_every_callback_outcome_is_counted(client, redis):
    before = scrape(client)
    receipt = {"json": {"Messages": {"Count": 1, "1": MESSAGE_1}}, "headers": JSON}
    assert client.post(RECEIPT, **receipt).status_code == 200
    assert client.post(RECEIPT, **receipt).status_code == 200  # the same callback again: a duplicate
    assert client.post("/redoxygen/reply?token=" + SECRET, data=REPLY, headers=JSON).status_code == 200
    assert client.post("/redoxygen/receipt", **receipt).status_code == 401
    assert (
        client.post(
            RECEIPT, data=b"x=" + b"a" * 70_000, headers=JSON, content_type="application/x-www-form-urlencoded"
        ).status_code
        == 413
    )
    assert client.post(RECEIPT, data=b"\x00png", content_type="image/png", headers=JSON).status_code == 415
    assert client.post(RECEIPT, data=b"{not json", content_type="application/json", headers=JSON).status_code == 400
    after = scrape(client)

    def delta(outcome: str, code: str) -> float:
        return callbacks(after, outcome, code) - callbacks(before, outcome, code)

    assert delta("accepted", "200") == 2
    assert delta("duplicate", "200") == 1
    for code in ("401", "413", "415", "400"):
        assert delta("rejected", code) == 1, code

    def events(kind: str, status: str) -> float:
        labels = {"provider": "redoxygen", "kind": kind, "status": status}
        return value(after, "smshooks_events_total", **labels) - value(before, "smshooks_events_total", **labels)

    assert events("receipt", "delivered") == 1  # the duplicate stored nothing
    assert events("reply", "received") == 1
    assert value(after, "smshooks_redis_up") == 1


def test_redis_down_still_serves_metrics_and_counts_503(client, redis, redis_server):
    before = scrape(client)
    redis_server.stop()
    try:
        response = client.post(RECEIPT, json=MESSAGE_1, headers=JSON)
        assert response.status_code == 503
        after = scrape(client)
    finally:
        redis_server.start()
    assert value(after, "smshooks_redis_up") == 0
    assert callbacks(after, "unavailable", "503") - callbacks(before, "unavailable", "503") == 1
    assert not [key for key in after if key[0].startswith("smshooks_queue")], "no Redis, no queue figures"


def test_queue_depth_and_oldest_age(client, redis, env):
    assert client.post(RECEIPT, json=MESSAGE_1, headers=JSON).status_code == 200
    time.sleep(1.1)  # a lower bound for the age below, not a wait for anything to happen
    waiting = scrape(client)
    assert value(waiting, "smshooks_queue_depth", queue="inbox") == 1
    assert value(waiting, "smshooks_queue_depth", queue="rq") == 1  # the dispatch job
    for queue in ("inbox", "rq"):
        assert 1.0 <= value(waiting, "smshooks_queue_oldest_age_seconds", queue=queue) < 120, queue
    run_worker(env)
    drained = scrape(client)
    for queue in ("inbox", "rq"):
        assert value(drained, "smshooks_queue_depth", queue=queue) == 0
        assert value(drained, "smshooks_queue_oldest_age_seconds", queue=queue) == 0


def test_handler_outcomes_and_latency_after_the_worker_runs(app, redis, env):
    # RETRY_INTERVALS "0,0": two retries. Flaky's first batch fails once (retry, then success); its
    # second fails three times (retry, retry, final failure).
    env = {**env, "HANDLERS": "database,tests.support_handlers:Flaky"}
    client = create_app(env).test_client()
    redis.set("test:flaky:failures", 1)
    assert client.post(RECEIPT, json=MESSAGE_1, headers=JSON).status_code == 200
    run_worker(env)
    redis.set("test:flaky:failures", 3)
    assert client.post(RECEIPT, json={**MESSAGE_1, "SMSId": 999}, headers=JSON).status_code == 200
    run_worker(env)
    samples = scrape(client)

    def jobs(handler: str, outcome: str) -> float:
        return value(samples, "smshooks_handler_jobs_total", handler=handler, outcome=outcome)

    assert (jobs("database", "success"), jobs("database", "retry"), jobs("database", "failure")) == (2, 0, 0)
    assert (
        jobs("tests.support_handlers:Flaky", "success"),
        jobs("tests.support_handlers:Flaky", "retry"),
        jobs("tests.support_handlers:Flaky", "failure"),
    ) == (1, 3, 1)
    assert value(samples, "smshooks_handler_events_total", handler="database", outcome="success") == 2

    count = value(samples, "smshooks_handled_latency_seconds_count", handler="database")
    total = value(samples, "smshooks_handled_latency_seconds_sum", handler="database")
    assert count == 2 and 0 < total < 120
    buckets = sorted(
        (float(labels["le"]), v)
        for (name, labels_set), v in samples.items()
        if name == "smshooks_handled_latency_seconds_bucket"
        for labels in [dict(labels_set)]
        if labels["handler"] == "database"
    )
    assert [v for _, v in buckets] == sorted(v for _, v in buckets), "buckets are cumulative"
    assert buckets[-1] == (float("inf"), 2)
    assert value(samples, "smshooks_handled_latency_seconds_count", handler="tests.support_handlers:Flaky") == 1
    assert value(samples, "smshooks_rq_jobs", state="failed") == 1


def test_api_calls_are_counted_from_a_worker_job(client, redis, env):
    queue = queue_for(redis, "smshooks")
    for outcome in ("ok", "ok", "http_5xx"):
        # The job function is api_call itself: it finds Redis through the current RQ job.
        queue.enqueue("webhooks.telemetry.metrics.api_call", "digitaleo", "sms/send", outcome)
    run_worker(env)
    samples = scrape(client)
    assert value(samples, "smshooks_api_calls_total", provider="digitaleo", endpoint="sms/send", outcome="ok") == 2
    assert (
        value(samples, "smshooks_api_calls_total", provider="digitaleo", endpoint="sms/send", outcome="http_5xx") == 1
    )


def test_api_call_outside_a_job_uses_redis_url_and_never_raises(client, redis, redis_server, monkeypatch):
    from webhooks.telemetry import metrics

    monkeypatch.setenv("REDIS_URL", redis_server.url)
    metrics._redis_from_env.cache_clear()
    try:
        metrics.api_call("digitaleo", "oauth/token", "ok")
        dead = Redis.from_url(f"redis://127.0.0.1:{free_port()}")
        metrics.api_call("digitaleo", "oauth/token", "ok", connection=dead)  # logged, not raised
    finally:
        metrics._redis_from_env.cache_clear()
    samples = scrape(client)
    assert value(samples, "smshooks_api_calls_total", provider="digitaleo", endpoint="oauth/token", outcome="ok") == 1


def test_gunicorn_workers_counts_are_summed(redis, redis_server, sqlite_url):
    """Two gunicorn workers each count the callbacks they served; a scrape from either shows the sum.

    One worker is held on a half-sent callback while the other serves the rest; then the
    held one is finished. Without multiprocess mode no scrape could show the total. Runs with
    gunicorn_conf's default folder, as the Procfile does (no PROMETHEUS_MULTIPROC_DIR given).
    """
    init_db(sqlite_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = process_env({"REDIS_URL": redis_server.url, "DATABASE_URL": sqlite_url, "WEBHOOK_SECRET": SECRET})
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    body = json.dumps({**MESSAGE_1, "SMSId": 1}).encode()
    others = 20
    with running(gunicorn(port), WORKER, env=env) as procs:
        wait_until_up(base, procs)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as held:
            held.sendall(
                f"POST {RECEIPT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Accept: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body[:5]
            )
            for n in range(2, 2 + others):  # the other worker serves all of these
                assert requests.post(f"{base}{RECEIPT}", json={**MESSAGE_1, "SMSId": n}, timeout=10).ok
            held.sendall(body[5:])
            assert b" 200 " in held.recv(4096).split(b"\r\n", 1)[0]
        total = others + 1

        def handled():
            samples = parse(requests.get(f"{base}/metrics?token={SECRET}", timeout=5).text)
            return (
                samples
                if value(samples, "smshooks_handler_events_total", handler="database", outcome="success") == total
                else None
            )

        samples = wait_for(handled, timeout=30, interval=0.5)
        scrapes = [parse(requests.get(f"{base}/metrics?token={SECRET}", timeout=5).text) for _ in range(6)]
    for scraped in [samples, *scrapes]:  # whichever worker answered
        assert callbacks(scraped, "accepted", "200") == total
        assert (
            value(scraped, "smshooks_events_total", provider="redoxygen", kind="receipt", status="delivered") == total
        )
    assert value(samples, "smshooks_handled_latency_seconds_count", handler="database") == total


def test_gunicorn_hooks_wipe_stale_files_and_clean_up(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from webhooks.cli import gunicorn_conf

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "given"))
    gunicorn_conf.on_starting(None)  # makes the folder
    given = tmp_path / "given"
    (given / "counter_123.db").write_bytes(b"an earlier run")
    gunicorn_conf.on_starting(None)
    assert given.is_dir() and not list(given.iterdir())

    (given / "counter_123.db").write_bytes(b"")
    (given / "gauge_livesum_123.db").write_bytes(b"")
    gunicorn_conf.child_exit(None, SimpleNamespace(pid=123))
    assert sorted(p.name for p in given.iterdir()) == ["counter_123.db"]  # a dead worker's counts stay

    gunicorn_conf.on_exit(None)
    assert given.is_dir(), "a folder the platform gave is never removed"
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    gunicorn_conf.on_starting(None)
    made = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    assert made.is_dir() and made.parent == Path(tempfile.gettempdir())
    gunicorn_conf.on_exit(None)
    assert not made.exists()


def test_pings_and_emails_are_counted_under_their_provider(client):
    before = scrape(client)
    assert client.get(f"/digitaleo/ping?sms_id=42&token={SECRET}").status_code == 200
    assert client.get(f"/digitaleo/ping?sms_id=x&token={SECRET}").status_code == 400
    email = b"From: a@example.com\r\nSubject: hello\r\nMessage-ID: <1@example.com>\r\n\r\nhi\r\n"
    assert client.post(f"/inbound/email?token={SECRET}", data=email, content_type="message/rfc822").status_code == 200
    after = scrape(client)

    def delta(outcome: str, code: str, provider: str) -> float:
        return callbacks(after, outcome, code, provider) - callbacks(before, outcome, code, provider)

    assert delta("accepted", "200", "digitaleo") == 1
    assert delta("rejected", "400", "digitaleo") == 1
    assert delta("accepted", "200", "email") == 1
    labels = {"provider": "email", "kind": "unknown", "status": "unknown"}
    assert value(after, "smshooks_events_total", **labels) - value(before, "smshooks_events_total", **labels) == 1


def test_a_rerun_of_a_handled_job_is_not_counted_again(client, redis, env):
    from webhooks.events import EVENT_SCHEMA, Event, Kind, Status, utcnow
    from webhooks.pipeline.handled import mark_handled

    event = EVENT_SCHEMA.dump(Event("redoxygen", Kind.RECEIPT, Status.DELIVERED, "1", utcnow()))
    queue_for(redis, "smshooks").enqueue(
        "webhooks.pipeline.jobs.handle", "database", [event], job_id="handle-database-x"
    )
    mark_handled(redis, "handle-database-x", wait=0)  # as if it had run to the end before
    run_worker(env)
    samples = scrape(client)
    assert value(samples, "smshooks_handler_jobs_total", handler="database", outcome="success") == 0
    assert value(samples, "smshooks_handled_latency_seconds_count", handler="database") == 0
