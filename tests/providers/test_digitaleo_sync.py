"""Digitaleo API client and sync jobs against the loopback stand-in: tokens, call counts, failures, end to end."""

from __future__ import annotations

import json
import logging
import time

import pytest
import sqlalchemy as sa

from tests.conftest import SECRET, run_worker
from tests.digitaleo_standin import CLIENT_SECRET, DigitaleoStandIn
from webhooks import create_app
from webhooks.config import Settings
from webhooks.pipeline.queueing import queue_for
from webhooks.providers.digitaleo import sync as digitaleo_sync
from webhooks.providers.digitaleo.api import TOKEN_KEY, DigitaleoClient, DigitaleoError, make_session
from webhooks.providers.digitaleo.config import DigitaleoConfig
from webhooks.providers.digitaleo.sync import FINAL_PREFIX, PENDING, run


@pytest.fixture
def api():
    standin = DigitaleoStandIn().start()
    yield standin
    standin.stop()


@pytest.fixture
def fast_session(monkeypatch):
    """The client's retries with millisecond backoff, so failing calls do not slow the suite."""
    monkeypatch.setattr(digitaleo_sync, "_session", make_session(backoff=0.01))


def settings_for(env, api, **extra) -> tuple[Settings, DigitaleoConfig]:
    env = {**env, **api.env(), "DIGITALEO_TIMEOUT": "2", **extra}
    return Settings.from_env(env), DigitaleoConfig.from_env(env)


def client(config, redis) -> DigitaleoClient:
    return DigitaleoClient(config, redis, make_session(backoff=0.01))


def inbox(redis) -> list[dict]:
    return [json.loads(item) for item in redis.lrange("smshooks:inbox", 0, -1)]


def sync(redis, settings, config) -> int:
    return run(
        redis,
        queue_for(redis, settings.queue_name),
        settings,
        config,
        DigitaleoClient(config, redis, make_session(backoff=0.01)),
    )


def ping(redis, settings, config, *ids) -> None:
    for sms_id in ids:
        digitaleo_sync.record_ping(redis, queue_for(redis, settings.queue_name), config, str(sms_id))


# Tokens -----------------------------------------------------------------------------------


def test_two_workers_share_one_token(env, redis, api):
    settings, config = settings_for(env, api)
    first, second = client(config, redis), client(config, redis)  # as in two worker processes
    first.get("status", {"action": "queue", "limit": 10})
    second.get("status", {"action": "queue", "limit": 10})
    assert api.calls["token"] == 1 and api.calls["queue"] == 2
    assert redis.ttl(TOKEN_KEY) > 3000  # kept until shortly before expires_in (3600)


def test_refused_token_is_renewed_once_and_the_call_repeated(env, redis, api):
    settings, config = settings_for(env, api)
    api.add_status("1", "ok")
    first = client(config, redis)
    first.token()
    api.revoke_tokens()
    listing = first.get("status", {"action": "queue", "limit": 10})
    assert [r["smsId"] for r in listing["list"]] == ["1"]
    assert api.calls["token"] == 2 and api.calls["queue"] == 2


def test_a_second_401_is_an_error_not_a_loop(env, redis, api, caplog):
    settings, config = settings_for(env, api)
    first = client(config, redis)
    first.token()
    api.revoke_tokens()
    api.fail(401, times=1)  # the first call's 401; the renewed token then works... unless revoked again
    api.fail(401, times=1)
    with pytest.raises(DigitaleoError) as err:
        first.get("status", {"action": "queue", "limit": 10})
    assert err.value.status == 401 and api.calls["queue"] == 2 and api.calls["token"] == 2


def test_bad_credentials_are_reported_without_the_secret(env, redis, api, caplog):
    settings, config = settings_for(env, api, DIGITALEO_CLIENT_ID="wrong")
    with caplog.at_level(logging.ERROR), pytest.raises(DigitaleoError) as err:
        client(config, redis).get("status", {"action": "queue"})
    assert err.value.status == 400 and "invalid_client" in str(err.value)
    assert "answered 400" in caplog.text
    assert CLIENT_SECRET not in caplog.text and CLIENT_SECRET not in str(err.value)
    assert CLIENT_SECRET not in repr(settings) + repr(config)


def test_5xx_and_slow_answers_are_retried(env, redis, api):
    settings, config = settings_for(env, api, DIGITALEO_TIMEOUT="1")
    api.add_status("1", "ok")
    api.fail(500, times=2)
    api.answer_slowly(1.5)  # over the 1 s read timeout: retried
    listing = client(config, redis).get("status", {"action": "queue", "limit": 10})
    assert [r["smsId"] for r in listing["list"]] == ["1"]
    assert api.calls["queue"] == 4


# Queue mode -------------------------------------------------------------------------------


def test_queue_mode_burst_costs_one_call(env, redis, api):
    settings, config = settings_for(env, api)
    for n in range(300):
        api.add_status(str(n), "on")
        api.add_status(str(n), "ok")
    ping(redis, settings, config, *range(300), *range(300))
    assert queue_for(redis, "smshooks").scheduled_job_registry.count == 1
    assert sync(redis, settings, config) == 600
    assert api.calls["queue"] == 1 and api.calls["smsstatus"] == 0
    assert len(inbox(redis)) == 600


def test_queue_mode_reads_full_pages_until_a_short_one(env, redis, api, monkeypatch):
    monkeypatch.setattr(digitaleo_sync, "PAGE", 100)
    settings, config = settings_for(env, api)
    for n in range(250):
        api.add_status(str(n), "ok")
    assert sync(redis, settings, config) == 250
    assert api.calls["queue"] == 3


def test_a_status_drained_twice_is_stored_once(env, redis, api):
    settings, config = settings_for(env, api)
    record = api.add_status("5", "ko", description="N4:204 Numéro invalide")
    sync(redis, settings, config)
    api.queue.append(dict(record))  # the provider hands the same status out again
    assert sync(redis, settings, config) == 0
    assert [(e["status"], e["final"]) for e in inbox(redis)] == [("failed", True)]


def test_a_drain_already_running_schedules_one_more_instead_of_calling(env, redis, api):
    settings, config = settings_for(env, api)
    lock = redis.lock(digitaleo_sync.DRAIN_LOCK, timeout=30)
    assert lock.acquire(blocking=False)
    assert sync(redis, settings, config) == 0
    ping(redis, settings, config, *range(5))  # pings meanwhile find that next drain scheduled
    assert api.calls["queue"] == 0
    assert queue_for(redis, "smshooks").scheduled_job_registry.count == 1
    lock.release()


def test_queue_mode_api_down_then_back_loses_nothing(env, redis, api):
    settings, config = settings_for(env, api)
    for n in range(20):
        api.add_status(str(n), "on")
    api.fail(503, times=4)  # every attempt (1 + 3 retries) fails: the job fails and RQ retries it later
    with pytest.raises(DigitaleoError):
        sync(redis, settings, config)
    for n in range(20):
        api.add_status(str(n), "ok")
    assert sync(redis, settings, config) == 40
    assert sorted({e["message_id"] for e in inbox(redis) if e["final"]}, key=int) == [str(n) for n in range(20)]


# Lookup mode ------------------------------------------------------------------------------


def test_lookup_mode_batches_ids_and_asks_final_ones_once_per_ping_burst(env, redis, api):
    settings, config = settings_for(env, api, DIGITALEO_MODE="lookup", DIGITALEO_LOOKUP_BATCH="100")
    for n in range(250):
        api.add_status(str(n), "on")
    ping(redis, settings, config, *range(250), *range(250))
    sync(redis, settings, config)
    assert api.calls["smsstatus"] == 3 and sorted(len(ids) for ids in api.asked) == [50, 100, 100]
    assert len(inbox(redis)) == 250

    for n in range(250):
        api.add_status(str(n), "ok")
    ping(redis, settings, config, *range(250))
    assert sync(redis, settings, config) == 250  # only the new statuses: the "on"s are not emitted again
    assert api.calls["smsstatus"] == 6
    assert redis.exists(FINAL_PREFIX + "0")

    # Final messages pinged again, twice each: a ping is news (a reply may follow `ok`), so
    # they are asked about, once for the burst, in one call; nothing new, nothing stored.
    ping(redis, settings, config, "0", "1", "2", "0", "1", "2")
    assert sync(redis, settings, config) == 0
    assert api.calls["smsstatus"] == 7 and api.asked[-1] == ["0", "1", "2"]
    assert sync(redis, settings, config) == 0 and api.calls["smsstatus"] == 7  # no ping, no call


def test_lookup_mode_out_of_order_pings_and_reply(env, redis, api):
    settings, config = settings_for(env, api, DIGITALEO_MODE="lookup")
    api.add_status("9", "on", date="2024-03-01 10:00:00")
    api.add_status("9", "rep", date="2024-03-01 10:05:00", response="Oui merci")
    ping(redis, settings, config, "9")
    sync(redis, settings, config)
    api.add_status("9", "ok", date="2024-03-01 10:01:00")  # delivered, reported after the reply
    ping(redis, settings, config, "9")
    sync(redis, settings, config)
    assert [(e["kind"], e["status"]) for e in inbox(redis)] == [
        ("receipt", "sent"),
        ("receipt", "replied"),
        ("reply", "received"),
        ("receipt", "delivered"),  # "rep" is final, yet the late ping is news: asked, and read
    ]
    assert api.calls["smsstatus"] == 2


def test_lookup_mode_api_down_then_back_loses_nothing(env, redis, api):
    settings, config = settings_for(env, api, DIGITALEO_MODE="lookup")
    for n in range(10):
        api.add_status(str(n), "ok")
    ping(redis, settings, config, *range(10))
    api.fail(500, times=4)
    with pytest.raises(DigitaleoError):
        sync(redis, settings, config)
    assert redis.scard(PENDING) == 10  # put back for the job's retry
    assert sync(redis, settings, config) == 10


def test_safety_tick_runs_once_per_interval_and_re_asks_open_ids(env, redis, api):
    settings, config = settings_for(env, api, DIGITALEO_MODE="lookup", DIGITALEO_SAFETY_INTERVAL="60")
    queue = queue_for(redis, "smshooks")
    redis.zadd(digitaleo_sync.OPEN, {"76": 1.0, "77": time.time() - 120, "78": time.time()})
    assert digitaleo_sync.safety_tick(redis, queue, config)
    assert not digitaleo_sync.safety_tick(redis, queue, config)  # another worker, same interval
    # 76 is past OPEN_MAX_AGE (dropped), 77 an interval old (asked again), 78 just pinged (left alone).
    assert redis.smembers(PENDING) == {b"77"} and queue.count == 1
    assert redis.zrange(digitaleo_sync.OPEN, 0, -1) == [b"77", b"78"]


# A reply after delivery, and ask_about -----------------------------------------------------


def test_lookup_mode_reply_after_delivery_is_a_reply_event(env, redis, api):
    settings, config = settings_for(env, api, DIGITALEO_MODE="lookup", DIGITALEO_SAFETY_INTERVAL="60")
    api.add_status("7", "on")
    api.add_status("7", "ok")
    ping(redis, settings, config, "7", "7")
    assert sync(redis, settings, config) == 2
    assert redis.exists(FINAL_PREFIX + "7") and not redis.zscore(digitaleo_sync.OPEN, "7")
    api.reply("7", "Oui, cette journée m'intéresse")
    ping(redis, settings, config, "7", "7")  # the reply's ping, repeated: one look-up
    assert sync(redis, settings, config) == 2  # the `rep` receipt and the reply; the rest were stored
    assert api.asked == [["7"], ["7"]]
    assert [(e["kind"], e["status"], e["final"]) for e in inbox(redis)] == [
        ("receipt", "sent", False),
        ("receipt", "delivered", True),
        ("receipt", "replied", True),
        ("reply", "received", True),
    ]
    reply = inbox(redis)[-1]
    assert (reply["message_id"], reply["sender"], reply["text"]) == (
        "7",
        "+33601010101",
        "Oui, cette journée m'intéresse",
    )
    # Final again: the safety sync, which has no news, leaves it alone even if a ping re-opened it.
    redis.zadd(digitaleo_sync.OPEN, {"7": time.time() - 120})
    assert digitaleo_sync.safety_tick(redis, queue_for(redis, "smshooks"), config)
    assert not redis.smembers(PENDING) and not redis.zscore(digitaleo_sync.OPEN, "7")


def test_queue_mode_reply_after_delivery_is_read_and_stored(env, redis, api):
    settings, config = settings_for(env, api)
    api.add_status("8", "on")
    api.add_status("8", "ok")
    ping(redis, settings, config, "8", "8")
    assert sync(redis, settings, config) == 2
    api.reply("8", "Merci, à demain")
    ping(redis, settings, config, "8")
    assert sync(redis, settings, config) == 2
    assert [(e["kind"], e["status"], e.get("text")) for e in inbox(redis)] == [
        ("receipt", "sent", None),
        ("receipt", "delivered", None),
        ("receipt", "replied", None),
        ("reply", "received", "Merci, à demain"),
    ]
    assert api.calls["queue"] == 2 and api.calls["smsstatus"] == 0


def test_safety_tick_never_re_adds_final_ids(env, redis, api):
    settings, config = settings_for(env, api, DIGITALEO_MODE="lookup", DIGITALEO_SAFETY_INTERVAL="60")
    old = time.time() - 120
    redis.zadd(digitaleo_sync.OPEN, {"80": old, "81": old})
    redis.set(FINAL_PREFIX + "80", "1")
    assert digitaleo_sync.safety_tick(redis, queue_for(redis, "smshooks"), config)
    assert redis.smembers(PENDING) == {b"81"}
    assert redis.zrange(digitaleo_sync.OPEN, 0, -1) == [b"81"]


def test_ask_about_in_lookup_mode_is_batched_with_the_pings(env, redis, api):
    settings, config = settings_for(env, api, DIGITALEO_MODE="lookup", DIGITALEO_LOOKUP_BATCH="100")
    queue = queue_for(redis, "smshooks")
    for n in range(140):
        api.add_status(str(n), "on")
    ping(redis, settings, config, *range(50))
    assert digitaleo_sync.ask_about(redis, queue, config, [str(n) for n in range(40, 140)] + ["x1", ""])
    assert digitaleo_sync.ask_about(redis, queue, config, "5")  # one id, not its characters
    assert queue.scheduled_job_registry.count == 1  # the pings' sync takes the watchdog's ids too
    assert sync(redis, settings, config) == 140
    asked = [i for batch in api.asked for i in batch]
    assert sorted(asked, key=int) == [str(n) for n in range(140)]  # each id once, the bad ones never
    assert sorted(len(batch) for batch in api.asked) == [40, 100]
    assert not redis.smembers(PENDING)
    # Asked about, not pinged: the safety sync does not take them up again.
    assert redis.zcard(digitaleo_sync.OPEN) == 50


def test_ask_about_in_queue_mode_looks_up_after_the_drain(env, redis, api):
    settings, config = settings_for(env, api)
    queue = queue_for(redis, "smshooks")
    for sms_id in ("1", "2", "3"):
        api.add_status(sms_id, "ok")
    api.queue.clear()  # their statuses left the queue unread (another reader took them)
    api.add_status("4", "ok")  # still in the queue
    assert digitaleo_sync.ask_about(redis, queue, config, ["1", "2", "3", "4"])
    assert queue.scheduled_job_registry.count == 1
    assert sync(redis, settings, config) == 4
    # "4" came with the drain: only the three the queue did not answer cost a look-up.
    assert api.calls["queue"] == 1 and api.asked == [["1", "2", "3"]]
    assert sorted(e["message_id"] for e in inbox(redis)) == ["1", "2", "3", "4"]
    assert sync(redis, settings, config) == 0 and api.calls["smsstatus"] == 1  # asked once


def test_ask_about_without_credentials_asks_nothing(env, redis, api):
    settings, config = settings_for(env, api, DIGITALEO_CLIENT_ID="")
    queue = queue_for(redis, "smshooks")
    assert digitaleo_sync.ask_about(redis, queue, config, ["1"]) is False
    assert not redis.exists(PENDING) and not redis.exists(digitaleo_sync.DUE)
    assert queue.count == 0 and queue.scheduled_job_registry.count == 0


# End to end -------------------------------------------------------------------------------


def test_pings_through_a_worker_into_the_database(env, redis, api, fast_session, sqlite_url):
    full_env = {**env, **api.env(), "DIGITALEO_PING_DELAY": "0", "DIGITALEO_TIMEOUT": "2"}
    web = create_app(full_env).test_client()
    for n in range(1, 6):
        api.add_status(str(n), "on", recipient=f"+3360101010{n}")
        api.add_status(str(n), "ok", recipient=f"+3360101010{n}")
        assert web.get(f"/digitaleo/ping?token={SECRET}&sms_id={n}").status_code == 200
    api.add_status("3", "rep", recipient="+33601010103", response="Merci !")
    assert web.get(f"/digitaleo/ping?token={SECRET}&sms_id=3").status_code == 200
    run_worker(full_env)
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as db:
        messages = dict(db.execute(sa.text("SELECT message_id, status FROM sms_messages")).all())
        replies = db.execute(sa.text("SELECT sender, text FROM sms_events WHERE kind = 'reply'")).all()
    engine.dispose()
    assert messages == {"1": "delivered", "2": "delivered", "3": "replied", "4": "delivered", "5": "delivered"}
    assert replies == [("+33601010103", "Merci !")]
    assert api.calls["queue"] == 1


def test_a_network_error_names_the_url_and_no_frame_holds_the_secret(env, redis, api):
    from tests.conftest import free_port

    settings, config = settings_for(env, api, DIGITALEO_TOKEN_URL=f"http://127.0.0.1:{free_port()}/token")
    with pytest.raises(DigitaleoError) as err:
        client(config, redis).token()
    assert "/token failed after retries" in str(err.value)
    # Error reports (Sentry) show frame variables; only those named like a secret are scrubbed there.
    tb = err.value.__traceback__
    while tb is not None:
        for name, value in tb.tb_frame.f_locals.items():
            if "token" not in name and "secret" not in name:
                assert CLIENT_SECRET not in repr(value), name
        tb = tb.tb_next


def test_real_worker_runs_the_sync_its_scheduler_holds_for_the_ping_delay(env, redis, api, sqlite_url):
    from tests.conftest import process_env, wait_for
    from tests.processes import WORKER, running

    full = {**env, **api.env(), "DIGITALEO_PING_DELAY": "1", "DIGITALEO_SAFETY_INTERVAL": "0"}
    web = create_app(full).test_client()
    for n in (1, 2, 3):
        api.add_status(str(n), "ok")
        assert web.get(f"/digitaleo/ping?token={SECRET}&sms_id={n}").status_code == 200
    assert queue_for(redis, "smshooks").scheduled_job_registry.count == 1
    with running(WORKER, env=process_env(full)):

        def stored():
            engine = sa.create_engine(sqlite_url)
            try:
                with engine.connect() as db:
                    return db.execute(sa.text("SELECT count(*) FROM sms_events")).scalar() == 3
            finally:
                engine.dispose()

        wait_for(stored, timeout=60, interval=0.5)
    assert api.calls["queue"] == 1


@pytest.mark.parametrize("mode", ["lookup", "queue"])
def test_reply_after_delivery_through_gunicorn_and_a_worker(env, redis, api, mode):
    """The stand-in pings a real gunicorn, a real `smshooks worker` asks the API; the reply reaches sms_events."""
    from tests.conftest import free_port, process_env, wait_for
    from tests.processes import WORKER, gunicorn, rows, running, wait_until_up

    port = free_port()
    full = {**env, **api.env(), "DIGITALEO_MODE": mode, "DIGITALEO_PING_DELAY": "1", "DIGITALEO_SAFETY_INTERVAL": "0"}
    database = env["DATABASE_URL"]
    api.add_status("121905361", "on")
    api.add_status("121905361", "ok")
    api.ping_url = f"http://127.0.0.1:{port}/digitaleo/ping?token={SECRET}"
    procs: list = []
    try:
        with running(gunicorn(port), WORKER, env=process_env(full)) as procs:
            wait_until_up(f"http://127.0.0.1:{port}", procs)
            assert api.ping("121905361") == 200
            wait_for(lambda: len(rows(database, "SELECT event_id FROM sms_events")) == 2, timeout=60, interval=0.3)
            api.reply("121905361", "Yes, this open day can interest me")  # and its ping, through gunicorn
            wait_for(lambda: len(rows(database, "SELECT event_id FROM sms_events")) == 4, timeout=60, interval=0.3)
            time.sleep(1.5)  # a duplicate would be stored within a ping delay
    except AssertionError as err:  # what the processes said, to tell a slow machine from a lost ping
        said = "\n".join(f"{p.args[0]}: {p.stdout.read()[-3000:]}" for p in procs)
        raise AssertionError(f"{err}; API calls {dict(api.calls)}, pings {api.pings}\n{said}") from None
    events = rows(database, "SELECT kind, status, message_id, sender, text FROM sms_events ORDER BY id")
    assert sorted(events, key=str) == sorted(
        [
            ("receipt", "sent", "121905361", None, None),
            ("receipt", "delivered", "121905361", None, None),
            ("receipt", "replied", "121905361", None, None),
            ("reply", "received", "121905361", "+33601010101", "Yes, this open day can interest me"),
        ],
        key=str,
    )
    assert rows(database, "SELECT status FROM sms_messages") == [("replied",)]
    assert api.pings == [("121905361", 200), ("121905361", 200)]
    calls = {"lookup": {"queue": 0, "smsstatus": 2}, "queue": {"queue": 2, "smsstatus": 0}}[mode]
    assert {k: api.calls[k] for k in ("queue", "smsstatus")} == calls


def test_safety_loop_schedules_a_sync_without_pings(env, redis, api):
    import threading

    from tests.conftest import wait_for

    settings, config = settings_for(env, api, DIGITALEO_SAFETY_INTERVAL="1")
    stop = threading.Event()
    thread = threading.Thread(target=digitaleo_sync.safety_loop, args=(settings, config, stop), daemon=True)
    thread.start()
    try:
        wait_for(lambda: queue_for(redis, "smshooks").count >= 1, timeout=20)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_api_calls_reach_metrics_by_endpoint_and_outcome(env, redis, api):
    from tests.scraping import scrape, value

    settings, config = settings_for(env, api)
    first = client(config, redis)
    first.get("status", {"action": "queue", "limit": 10})
    api.fail(404, times=1)
    with pytest.raises(DigitaleoError):
        first.get("smsstatus", {"smsId": "1"})
    samples = scrape(create_app({**env, **api.env(), "WEBHOOK_SECRET": SECRET}).test_client())
    counted = {
        k: value(samples, "smshooks_api_calls_total", provider="digitaleo", endpoint=k, outcome=o)
        for k, o in (("token", "ok"), ("status", "ok"), ("smsstatus", "http_4xx"))
    }
    assert counted == {"token": 1, "status": 1, "smsstatus": 1}


def test_lookup_pings_during_a_sync_wait_for_the_next_one(env, redis, api):
    import threading

    from webhooks.providers.digitaleo.sync import DUE

    settings, config = settings_for(env, api, DIGITALEO_MODE="lookup")
    for sms_id in ("1", "2"):
        api.add_status(sms_id, "ok")
    ping(redis, settings, config, "1")
    api.hold = threading.Event()  # the /smsstatus answer waits until "2" has been pinged
    first = threading.Thread(target=sync, args=(redis, settings, config))
    first.start()
    assert api.asked_event.wait(30), "the sync never asked about '1'"
    ping(redis, settings, config, "2")  # arrives while "1" is being asked about
    api.hold.set()
    first.join(30)
    # One call for the batch it took; the late id is left to the sync its own ping scheduled.
    assert api.asked == [["1"]]
    assert redis.smembers(PENDING) == {b"2"} and redis.exists(DUE)
    sync(redis, settings, config)
    assert api.asked == [["1"], ["2"]]


def test_lookup_the_tail_of_a_burst_still_arriving_waits_for_the_next_sync(env, redis, api):
    import threading

    settings, config = settings_for(env, api, DIGITALEO_MODE="lookup", DIGITALEO_LOOKUP_BATCH="100")
    for n in range(151):
        api.add_status(str(n), "on")
    ping(redis, settings, config, *range(150))
    api.hold = threading.Event()  # the first batch's answer waits until "150" has been pinged
    first = threading.Thread(target=sync, args=(redis, settings, config))
    first.start()
    assert api.asked_event.wait(30), "the sync never asked"
    ping(redis, settings, config, "150")  # the burst goes on: the next sync is scheduled
    api.hold.set()
    first.join(30)
    # One full batch; the 50 left and the late one go together to the sync that ping scheduled.
    assert [len(ids) for ids in api.asked] == [100] and redis.scard(PENDING) == 51
    sync(redis, settings, config)
    assert [len(ids) for ids in api.asked] == [100, 51] and len(inbox(redis)) == 151
