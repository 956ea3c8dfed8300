"""The receipt watchdog on a real Redis: deadlines armed by the dispatch, declared once by a pass."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import pytest
import requests
from redis.exceptions import ResponseError

from tests.conftest import run_worker, wait_for
from tests.digitaleo_standin import DigitaleoStandIn
from tests.processes import rows
from webhooks.config import ConfigError, Settings
from webhooks.events import Event, Kind, Status
from webhooks.pipeline import watchdog
from webhooks.pipeline.deadlines import ASKED, DEADLINES, FINAL, LAST
from webhooks.pipeline.queueing import INBOX, Ingest, dispatch_inbox, queue_for, received_at
from webhooks.providers.digitaleo import sync as digitaleo_sync
from webhooks.providers.digitaleo.api import DigitaleoClient, make_session
from webhooks.providers.digitaleo.config import DigitaleoConfig

T0 = 1_800_000_000.0  # received_at of the first status, unix seconds


def receipt(message_id: str, status: Status, at: float = T0, provider: str = "redoxygen", code: str = "") -> Event:
    when = datetime.fromtimestamp(at, timezone.utc)
    return Event(
        provider=provider,
        kind=Kind.RECEIPT,
        status=status,
        message_id=message_id,
        final=status in (Status.DELIVERED, Status.FAILED),
        provider_status=code or status.value,
        occurred_at=when,
        received_at=when,
    )


def dispatched(redis, settings: Settings, *events: Event) -> None:
    """Store the events as a callback does and run the dispatch (which arms the deadlines)."""
    queue = queue_for(redis, settings.queue_name)
    Ingest(redis, queue, settings.dedupe_window).store(list(events))
    dispatch_inbox(redis, queue, settings)


def run_pass(redis, settings: Settings, now: float, ask=None) -> int:
    ingest = Ingest(redis, queue_for(redis, settings.queue_name), settings.dedupe_window)
    return watchdog.run_pass(redis, ingest, settings, ask, now=now)


def overdue(redis) -> list[dict]:
    """The receipt_overdue events the passes stored (not dispatched yet)."""
    return [e for e in map(json.loads, redis.lrange(INBOX, 0, -1)) if e["kind"] == "receipt_overdue"]


DAY = Settings()  # RECEIPT_DEADLINE's default: 24 h


def test_a_sent_message_is_declared_once_at_its_deadline(redis):
    dispatched(redis, DAY, receipt("1", Status.SENT))
    assert redis.zscore(DEADLINES, "redoxygen:1") == T0 + 86400
    assert run_pass(redis, DAY, T0 + 86399) == 0
    assert run_pass(redis, DAY, T0 + 86401) == 1
    assert run_pass(redis, DAY, T0 + 86500) == 0  # once
    [event] = overdue(redis)
    assert (event["provider"], event["message_id"], event["status"], event["final"]) == (
        "redoxygen",
        "1",
        "sent",
        False,
    )
    assert event["description"] == "no final status 24 h after `sent` at 2027-01-15T08:00:00+00:00"
    assert event["raw"]["last_status_ago"] == "24 h ago"
    assert event["raw"]["deadline"] == "2027-01-16T08:00:00+00:00"
    assert not redis.exists(DEADLINES) and not redis.exists(LAST)


def test_the_first_status_starts_the_clock_and_the_last_one_is_reported(redis):
    dispatched(redis, DAY, receipt("1", Status.QUEUED, T0))
    dispatched(redis, DAY, receipt("1", Status.SENT, T0 + 600))
    dispatched(redis, DAY, receipt("1", Status.QUEUED, T0 + 300, code="late"))  # older: not the last status
    assert redis.zscore(DEADLINES, "redoxygen:1") == T0 + 86400  # not pushed by the later ones
    assert run_pass(redis, DAY, T0 + 86400) == 1
    [event] = overdue(redis)
    assert event["status"] == "sent" and "`sent` at" in event["description"]


def test_a_final_status_clears_the_deadline(redis):
    dispatched(redis, DAY, receipt("1", Status.SENT), receipt("2", Status.SENT))
    dispatched(redis, DAY, receipt("1", Status.DELIVERED, T0 + 5))
    assert redis.zrange(DEADLINES, 0, -1) == [b"redoxygen:2"]
    assert run_pass(redis, DAY, T0 + 90000) == 1
    assert [e["message_id"] for e in overdue(redis)] == ["2"]


TWO_SECONDS = Settings.from_env({"RECEIPT_DEADLINE": "2s"})


def waiting(redis, settings: Settings, *events: Event) -> None:
    """Store the events as a callback does and dispatch nothing: a worker that is behind."""
    Ingest(redis, queue_for(redis, settings.queue_name), settings.dedupe_window).store(list(events))


def test_a_final_status_still_waiting_in_the_inbox_is_no_overdue(redis):
    dispatched(redis, TWO_SECONDS, receipt("1", Status.SENT), receipt("2", Status.SENT))
    waiting(redis, TWO_SECONDS, receipt("1", Status.DELIVERED, T0 + 1))  # in time; the dispatch is behind
    assert run_pass(redis, TWO_SECONDS, T0 + 3) == 0  # "2" too waits: the inbox may hold its final status
    assert overdue(redis) == []
    assert redis.zscore(DEADLINES, "redoxygen:1") == T0 + 2
    dispatch_inbox(redis, queue_for(redis, TWO_SECONDS.queue_name), TWO_SECONDS)
    assert redis.zscore(DEADLINES, "redoxygen:1") is None  # cleared by the dispatch
    assert run_pass(redis, TWO_SECONDS, T0 + 4) == 1  # the inbox is empty: "2" is declared, "1" never
    assert run_pass(redis, TWO_SECONDS, T0 + 5) == 0
    assert [e["message_id"] for e in overdue(redis)] == ["2"]
    assert not redis.exists(DEADLINES)


def test_an_inbox_newer_than_a_deadline_holds_nothing_back(redis):
    dispatched(redis, TWO_SECONDS, receipt("1", Status.SENT, T0), receipt("2", Status.SENT, T0 + 1))
    waiting(redis, TWO_SECONDS, receipt("3", Status.SENT, T0 + 2.5))  # received after "1"'s deadline
    assert run_pass(redis, TWO_SECONDS, T0 + 4) == 1  # "2" (due T0 + 3) waits for the event of T0 + 2.5
    assert [e["message_id"] for e in overdue(redis)] == ["1"]
    assert redis.zrange(DEADLINES, 0, -1, withscores=True) == [(b"redoxygen:2", T0 + 3)]


def test_the_cutoff_is_now_or_the_oldest_waiting_event():
    assert watchdog.due_by(T0, None) == T0
    assert watchdog.due_by(T0, T0 - 5) == T0 - 5
    assert watchdog.due_by(T0, T0 + 5) == T0  # an event stamped later than the pass's clock
    assert received_at(b"not json") is None and received_at(None) is None
    assert received_at(b'{"received_at": "2027-01-15T08:00:00+00:00"}') == T0


def test_a_late_non_final_status_after_the_final_one_starts_no_clock(redis):
    dispatched(redis, DAY, receipt("1", Status.DELIVERED, T0 + 5))
    dispatched(redis, DAY, receipt("1", Status.SENT, T0))  # out of order
    dispatched(redis, DAY, receipt("2", Status.SENT, T0), receipt("2", Status.FAILED, T0 + 1))  # one batch
    assert not redis.exists(DEADLINES)
    assert redis.zscore(FINAL, "redoxygen:1") is not None
    assert run_pass(redis, DAY, T0 + 90000) == 0 and overdue(redis) == []


def test_a_reply_clears_the_deadline(redis):
    dispatched(redis, DAY, receipt("1", Status.SENT))
    reply = Event("redoxygen", Kind.REPLY, Status.RECEIVED, "1", datetime.now(timezone.utc), final=True, text="ok")
    dispatched(redis, DAY, reply)
    assert not redis.exists(DEADLINES)


def test_a_pass_killed_between_store_and_remove_declares_the_same_event_again(redis, monkeypatch):
    dispatched(redis, DAY, receipt("1", Status.SENT))
    with monkeypatch.context() as patched:
        patched.setattr(watchdog, "_REMOVE", "return redis.error_reply('killed')")
        with pytest.raises(ResponseError):
            run_pass(redis, DAY, T0 + 90000)
    assert len(overdue(redis)) == 1 and redis.exists(DEADLINES)
    run_pass(redis, DAY, T0 + 90001)
    assert len(overdue(redis)) == 1  # the same event id: a duplicate, dropped
    assert not redis.exists(DEADLINES)


def test_a_member_re_armed_during_the_pass_keeps_its_new_deadline(redis):
    dispatched(redis, DAY, receipt("1", Status.SENT))
    remove = redis.register_script(watchdog._REMOVE)
    redis.zadd(DEADLINES, {"redoxygen:1": T0 + 99999})  # what the pass read was T0 + 86400
    assert remove(keys=[DEADLINES, LAST, ASKED], args=["redoxygen:1", repr(T0 + 86400)]) == 0
    assert redis.zscore(DEADLINES, "redoxygen:1") == T0 + 99999


def test_per_provider_deadlines_and_off():
    env = {"RECEIPT_DEADLINE": "2s", "SMSC_RECEIPT_DEADLINE": "off", "OGANGI_RECEIPT_DEADLINE": "90m"}
    settings = Settings.from_env(env)
    assert [settings.deadline_for(p) for p in ("redoxygen", "smsc", "ogangi", "digitaleo")] == [2, None, 5400, 2]
    assert Settings.from_env({"RECEIPT_DEADLINE": "2d"}).receipt_deadline == 172800
    assert Settings.from_env({"RECEIPT_DEADLINE": "45"}).receipt_deadline == 45
    assert Settings.from_env({"RECEIPT_DEADLINE": "off"}).deadline_for("smsc") is None
    assert watchdog.interval_for(settings) == 1.0 and watchdog.interval_for(DAY) == 60.0
    for bad in ("3w", "-5", "1.5h", "0", "soon"):
        with pytest.raises(ConfigError, match=f"RECEIPT_DEADLINE must be a duration .* got '{bad}'"):
            Settings.from_env({"RECEIPT_DEADLINE": bad})
    with pytest.raises(ConfigError, match="SMSC_RECEIPT_DEADLINE .* got '2 weeks'"):
        Settings.from_env({"SMSC_RECEIPT_DEADLINE": "2 weeks"})


def test_per_provider_deadlines_are_armed_apart(redis):
    settings = Settings.from_env({"SMSC_RECEIPT_DEADLINE": "off", "OGANGI_RECEIPT_DEADLINE": "90m"})
    dispatched(
        redis,
        settings,
        receipt("1", Status.SENT, provider="redoxygen"),
        receipt("1", Status.SENT, provider="smsc"),
        receipt("1", Status.SENT, provider="ogangi"),
    )
    assert redis.zrange(DEADLINES, 0, -1, withscores=True) == [(b"ogangi:1", T0 + 5400), (b"redoxygen:1", T0 + 86400)]
    assert run_pass(redis, settings, T0 + 6000) == 1
    assert [e["provider"] for e in overdue(redis)] == ["ogangi"]


def test_off_tracks_nothing(redis):
    settings = Settings.from_env({"RECEIPT_DEADLINE": "off"})
    dispatched(redis, settings, receipt("1", Status.SENT), receipt("2", Status.DELIVERED))
    assert not any(redis.exists(k) for k in (DEADLINES, LAST, FINAL))


def test_a_provider_turned_off_later_is_dropped_without_an_event(redis):
    dispatched(redis, DAY, receipt("1", Status.SENT, provider="smsc"))
    assert run_pass(redis, Settings.from_env({"SMSC_RECEIPT_DEADLINE": "off"}), T0 + 90000) == 0
    assert overdue(redis) == [] and not redis.exists(DEADLINES)


def test_a_large_backlog_is_declared_in_rounds(redis, monkeypatch):
    monkeypatch.setattr(watchdog, "DUE_BATCH", 7)
    dispatched(redis, DAY, *(receipt(str(n), Status.SENT, T0 + n) for n in range(30)))
    assert run_pass(redis, DAY, T0 + 90000) == 30
    assert sorted(int(e["message_id"]) for e in overdue(redis)) == list(range(30))


def test_one_pass_at_a_time(redis):
    dispatched(redis, DAY, receipt("1", Status.SENT, time.time() - 90000))
    ingest = Ingest(redis, queue_for(redis, DAY.queue_name), DAY.dedupe_window)
    held = redis.lock(watchdog.LOCK, timeout=10)
    assert held.acquire(blocking=False)
    assert watchdog.tick(redis, ingest, DAY) is None  # another worker's pass
    held.release()
    assert watchdog.tick(redis, ingest, DAY) == 1


def test_handlers_render_the_alert():
    from handlers.log import line_for
    from handlers.mail import body_for, subject_for
    from handlers.slack import blocks_for, summary

    event = watchdog.overdue_event("ogangi:42", T0 + 86400, f"sent {T0}", T0 + 86401, 86400)
    assert summary(event) == "No receipt for SMS 42 (last: sent, 24 h ago)"
    assert blocks_for(event)[0]["text"]["text"] == ":hourglass: *No receipt for SMS 42 (last: sent, 24 h ago)*"
    assert subject_for(event) == "No receipt for SMS 42 (last: sent, 24 h ago)"
    assert "Description: no final status 24 h after `sent` at 2027-01-15T08:00:00+00:00" in body_for(event)
    line = json.loads(line_for(event))
    assert (line["kind"], line["status"], line["final"]) == ("receipt_overdue", "sent", False)
    assert watchdog.span(2) == "2 s" and watchdog.span(5400) == "90 min" and watchdog.span(3 * 86400) == "3 d"


# Digitaleo: the API is asked before a message is declared ------------------------------------


@pytest.fixture
def api():
    standin = DigitaleoStandIn().start()
    yield standin
    standin.stop()


def test_digitaleo_is_asked_first_then_declared(env, redis, api):
    full = {**env, **api.env(), "DIGITALEO_MODE": "lookup", "RECEIPT_DEADLINE": "60s", "DIGITALEO_PING_DELAY": "0"}
    settings, config = Settings.from_env(full), DigitaleoConfig.from_env(full)
    queue = queue_for(redis, settings.queue_name)
    now = time.time()
    dispatched(redis, settings, *(receipt(i, Status.SENT, now, provider="digitaleo", code="on") for i in "123"))
    api.add_status("1", "on")
    api.add_status("1", "ok")  # delivered: its ping was lost
    api.add_status("2", "on")  # still on its way
    ask = watchdog.digitaleo_asker(redis, queue, config)
    assert ask is not None
    assert run_pass(redis, settings, now + 61, ask) == 0  # asked, not declared
    assert redis.smembers(ASKED) == {b"digitaleo:1", b"digitaleo:2", b"digitaleo:3"}
    assert redis.zscore(DEADLINES, "digitaleo:1") == pytest.approx(now + 61 + 60, abs=0.01)  # the grace
    client = DigitaleoClient(config, redis, make_session(backoff=0.01))
    digitaleo_sync.run(redis, queue, settings, config, client)
    assert sorted(i for batch in api.asked for i in batch) == ["1", "2", "3"]  # one batched look-up
    dispatch_inbox(redis, queue, settings)  # "1" delivered: cleared
    assert run_pass(redis, settings, now + 200, ask) == 2
    assert sorted(e["message_id"] for e in overdue(redis)) == ["2", "3"]
    assert not redis.exists(ASKED)


def test_digitaleo_without_the_api_is_declared_at_once(env, redis):
    settings = Settings.from_env({**env, "RECEIPT_DEADLINE": "60s"})
    queue = queue_for(redis, settings.queue_name)
    now = time.time()
    dispatched(redis, settings, receipt("1", Status.SENT, now, provider="digitaleo", code="on"))
    ask = watchdog.digitaleo_asker(redis, queue, DigitaleoConfig.from_env({}))
    assert run_pass(redis, settings, now + 61, ask) == 1
    assert not redis.exists(ASKED)


# Into the database handler -----------------------------------------------------------------


def test_overdue_reaches_the_database_and_a_final_status_clears_it(env, redis, sqlite_url):
    env = {**env, "RECEIPT_DEADLINE": "60s"}
    settings = Settings.from_env(env)
    now = time.time()
    dispatched(redis, settings, receipt("1", Status.SENT, now), receipt("2", Status.SENT, now))
    run_worker(env)
    assert run_pass(redis, settings, now + 61) == 2
    run_worker(env)
    query = "select message_id, status, overdue_since is not null from sms_messages order by message_id"
    assert rows(sqlite_url, query) == [("1", "sent", 1), ("2", "sent", 1)]
    assert rows(sqlite_url, "select count(*) from sms_events where kind = 'receipt_overdue'") == [(2,)]
    dispatched(redis, settings, receipt("1", Status.DELIVERED, now + 100))
    run_worker(env)
    assert rows(sqlite_url, query) == [("1", "delivered", 0), ("2", "sent", 1)]


def test_handlers_get_the_new_kind_only_when_they_want_it(env, redis, sqlite_url):
    settings = Settings.from_env({**env, "RECEIPT_DEADLINE": "60s"})
    now = time.time()
    queue = queue_for(redis, settings.queue_name)
    Ingest(redis, queue, settings.dedupe_window).store([receipt("1", Status.SENT, now)])
    run_worker({**env, "RECEIPT_DEADLINE": "60s", "DATABASE_EVENTS": "delivered"})  # the dispatch arms it
    assert rows(sqlite_url, "select count(*) from sms_events") == [(0,)]
    assert run_pass(redis, settings, now + 61) == 1
    run_worker({**env, "RECEIPT_DEADLINE": "60s", "DATABASE_EVENTS": "receipt_overdue"})
    assert rows(sqlite_url, "select message_id, kind, status from sms_events") == [("1", "receipt_overdue", "sent")]
    # The database never saw the message's receipt: the alert makes its row.
    assert rows(sqlite_url, "select status, final, overdue_since is not null from sms_messages") == [("sent", 0, 1)]


# End to end: gunicorn and `smshooks worker` with deadlines of seconds ---------------------------


def test_real_processes_declare_a_silent_message_and_a_final_status_clears_it(redis, redis_server, sqlite_url):
    from tests.conftest import SECRET
    from tests.processes import WORKER, gunicorn, running, service, wait_until_up

    port, base, env = service(redis_server, sqlite_url, {"RECEIPT_DEADLINE": "2s"})

    def post(message_id: str, status: str) -> None:
        now = datetime.now(timezone.utc).isoformat()
        body = {"id": message_id, "to": "18133210984", "status": status, "date": now}
        answer = requests.post(f"{base}/ogangi/status?token={SECRET}", json=body, timeout=5)
        assert answer.status_code == 200, answer.text

    def alerts() -> list[tuple]:
        return rows(sqlite_url, "select message_id, status from sms_events where kind = 'receipt_overdue'")

    with running(gunicorn(port), WORKER, env=env) as procs:
        wait_until_up(base, procs)
        post("silent", "SENT")
        post("on-time", "SENT")
        post("on-time", "DELIVERED")
        sent = time.monotonic()
        wait_for(lambda: alerts(), timeout=15)
        took = time.monotonic() - sent
        assert 1.5 <= took <= 6, took  # a 2 s deadline, passes every second
        query = "select message_id, status, overdue_since is not null from sms_messages order by message_id"
        assert rows(sqlite_url, query) == [("on-time", "delivered", 0), ("silent", "sent", 1)]
        time.sleep(2)  # more passes: still one alert, and none for the message delivered in time
        assert alerts() == [("silent", "sent")]
        post("silent", "DELIVERED")
        wait_for(lambda: rows(sqlite_url, query) == [("on-time", "delivered", 0), ("silent", "delivered", 0)])
    [(description,)] = rows(sqlite_url, "select description from sms_events where kind = 'receipt_overdue'")
    assert description.startswith("no final status 2 s after `sent` at ")


def test_real_processes_raise_no_alert_for_a_final_status_a_busy_worker_has_not_dispatched(
    redis, redis_server, sqlite_url
):
    from tests.conftest import SECRET
    from tests.processes import WORKER, gunicorn, running, service, wait_until_up

    port, base, env = service(
        redis_server,
        sqlite_url,
        {
            "RECEIPT_DEADLINE": "2s",
            "HANDLERS": "database,tests.support_handlers:Slow",  # Slow holds the worker while test:slow:block exists
        },
    )

    def post(message_id: str, status: str) -> None:
        body = {"id": message_id, "to": "18133210984", "status": status}
        answer = requests.post(f"{base}/ogangi/status?token={SECRET}", json=body, timeout=5)
        assert answer.status_code == 200, answer.text

    def alerts() -> list[tuple]:
        return rows(sqlite_url, "select message_id from sms_events where kind = 'receipt_overdue' order by 1")

    redis.set("test:slow:block", 1)
    with running(gunicorn(port), WORKER, env=env) as procs:
        wait_until_up(base, procs)
        post("on-time", "SENT")
        wait_for(lambda: redis.get("test:slow:attempts"))  # the worker is held; its watchdog thread is not
        post("silent", "SENT")
        post("on-time", "DELIVERED")  # well within the deadline, but waiting in the inbox
        time.sleep(4)  # past the deadline of both: four passes or so
        assert redis.llen(INBOX) >= 2 and overdue(redis) == []
        redis.delete("test:slow:block")
        wait_for(lambda: alerts() == [("silent",)], timeout=20)
        time.sleep(2)  # more passes: nothing more
        assert alerts() == [("silent",)]
        query = "select message_id, status, overdue_since is not null from sms_messages order by message_id"
        assert rows(sqlite_url, query) == [("on-time", "delivered", 0), ("silent", "sent", 1)]
