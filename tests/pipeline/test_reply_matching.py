"""When two replies are one, on a real Redis: a reply's copies by two routes are one event, two replies are two.

docs/providers.md, "When two replies are one", says the rules these tests hold the code to.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import requests

from tests.conftest import SECRET, free_port, process_env, wait_for
from tests.processes import WORKER, gunicorn, rows, running, wait_until_up
from tests.redoxygen_samples import MESSAGE_1, REPLY
from webhooks import create_app
from webhooks.email.parse import parse_email
from webhooks.events import reply_match_key
from webhooks.pipeline.queueing import INBOX, REPLIES_PREFIX, Ingest, queue_for
from webhooks.providers import ParseContext, ogangi, smsc
from webhooks.providers.digitaleo.statuses import parse_records

TOKEN = f"?token={SECRET}"
JSON = {"Accept": "application/json"}
PARIS = ZoneInfo("Europe/Paris")


def reply_email(fields: dict[str, str], message_id: str | None = "<reply-1@redoxygen.net>") -> bytes:
    """Red Oxygen's email copy of a reply: the callback's fields one per line (tests/email_samples.py)."""
    head = "From: Red Oxygen <noreply@redoxygen.net>\r\nTo: user@your_domain.com\r\nSubject: SMS reply\r\n"
    if message_id:
        head += f"Message-ID: {message_id}\r\nDate: Fri, 20 Sep 2024 04:40:02 +0000\r\n"
    body = "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    return f"{head}Content-Type: text/plain; charset=utf-8\r\n\r\n{body}".encode()


# Red Oxygen's email copy need not carry the callback's EmailId (webhooks/providers/redoxygen.py).
EMAILED = {**REPLY, "EmailId": "81001201120271"}


def callback(client, fields=REPLY) -> dict:
    response = client.post(f"/redoxygen/reply{TOKEN}", data=fields, headers=JSON)
    assert response.status_code == 200, response.data
    return response.get_json()


def email(client, raw: bytes) -> dict:
    response = client.post(f"/inbound/email{TOKEN}", data=raw, content_type="message/rfc822", headers=JSON)
    assert response.status_code == 200, response.data
    return response.get_json()


def inbox(redis) -> list[dict]:
    return [json.loads(item) for item in redis.lrange(INBOX, 0, -1)]


def accepted(*answers: dict) -> list[int]:
    return [a["accepted"] for a in answers]


def test_callback_then_its_email_copy_is_one_event(client, redis):
    first = callback(client)
    copy = email(client, reply_email(EMAILED))
    assert accepted(first, copy) == [1, 0] and copy["duplicates"] == 1
    [event] = inbox(redis)
    assert (event["kind"], event["text"], event["event_id"]) == ("reply", REPLY["ReplyText"], first["event_ids"][0])


def test_email_copy_then_the_late_callback_is_one_event(client, redis):
    copy = email(client, reply_email(EMAILED))
    late = callback(client)
    assert accepted(copy, late) == [1, 0]
    assert [e["event_id"] for e in inbox(redis)] == copy["event_ids"]


def test_two_replies_with_the_same_words_are_two_events(client, redis):
    # Red Oxygen gives each reply its EmailId: a second "YES" has another.
    yes = {**REPLY, "ReplyText": "YES"}
    answers = [callback(client, yes), callback(client, {**yes, "EmailId": "778900"})]
    assert accepted(*answers) == [1, 1]
    assert [e["text"] for e in inbox(redis)] == ["YES", "YES"]


def test_a_redelivered_callback_is_one_event(client, redis):
    answers = [callback(client) for _ in range(3)]
    assert accepted(*answers) == [1, 0, 0]
    assert len(inbox(redis)) == 1


def test_a_redelivered_email_is_one_event(client, redis):
    # By the relay and by SMTP, or twice by either: the same Message-ID.
    answers = [email(client, reply_email(EMAILED)) for _ in range(2)]
    assert accepted(*answers) == [1, 0] and len(inbox(redis)) == 1


def test_two_callbacks_then_their_two_email_copies_are_two_events(client, redis):
    yes = {**REPLY, "ReplyText": "YES"}
    callbacks = [callback(client, yes), callback(client, {**yes, "EmailId": "778900"})]
    copies = [email(client, reply_email({**yes, "EmailId": f"9{n}"}, f"<r-{n}@redoxygen.net>")) for n in (1, 2)]
    third = email(client, reply_email({**yes, "EmailId": "93"}, "<r-3@redoxygen.net>"))
    # A third email outnumbers the callbacks: a reply whose callback failed.
    assert accepted(*callbacks, *copies, third) == [1, 1, 0, 0, 1]
    assert len(inbox(redis)) == 3


def test_other_words_or_another_sms_are_never_matched(client, redis):
    callback(client)
    answers = [
        email(client, reply_email({**EMAILED, "ReplyText": "No, not at 10"})),
        email(client, reply_email({**EMAILED, "SmsId": "124"}, "<reply-2@redoxygen.net>")),
        email(client, reply_email({**EMAILED, "DestTN": "61409000001"}, "<reply-3@redoxygen.net>")),
    ]
    assert accepted(*answers) == [1, 1, 1] and len(inbox(redis)) == 4


def test_after_the_window_a_copy_is_a_new_event(env, redis):
    client = create_app({**env, "REPLY_MATCH_WINDOW": "1"}).test_client()
    first = callback(client)
    key = REPLIES_PREFIX + reply_match_key("redoxygen", "123", "+61409000000", REPLY["ReplyText"])
    assert redis.hgetall(key) == {b"callback": b"1"} and 0 < redis.pttl(key) <= 1000
    time.sleep(1.2)
    assert not redis.exists(key)
    late = email(client, reply_email(EMAILED))
    assert accepted(first, late) == [1, 1] and len(inbox(redis)) == 2


def test_the_window_is_counted_from_the_last_reply_with_those_words(env, redis):
    client = create_app({**env, "REPLY_MATCH_WINDOW": "2"}).test_client()
    callback(client)
    time.sleep(1.2)
    callback(client, {**REPLY, "EmailId": "778900"})
    time.sleep(1.2)  # 2.4 s after the first reply, 1.2 s after the second
    copies = [email(client, reply_email(EMAILED)), email(client, reply_email(EMAILED, "<reply-2@redoxygen.net>"))]
    assert accepted(*copies) == [0, 0] and len(inbox(redis)) == 2


def test_without_a_fact_of_its_own_a_reply_is_told_apart_by_the_window_alone(env, redis):
    # No EmailId: a redelivery and a second "YES" look the same; within the window it is a redelivery.
    client = create_app({**env, "REPLY_MATCH_WINDOW": "1"}).test_client()
    bare = {k: v for k, v in REPLY.items() if k != "EmailId"}
    answers = [callback(client, bare), callback(client, bare)]
    ttl = redis.pttl(f"smshooks:seen:{answers[0]['event_ids'][0]}")
    assert 0 < ttl <= 1000  # not DEDUPE_WINDOW: kept as long as the match
    time.sleep(1.2)
    answers.append(callback(client, bare))
    assert accepted(*answers) == [1, 0, 1] and len(inbox(redis)) == 2


def test_a_reply_with_its_own_fact_is_remembered_for_the_dedupe_window(client, redis):
    first = callback(client)
    assert 7 * 24 * 3600 - 10 < redis.ttl(f"smshooks:seen:{first['event_ids'][0]}") <= 7 * 24 * 3600


def ingest(redis, match_window: int = 900) -> Ingest:
    return Ingest(redis, queue_for(redis, "smshooks"), 7 * 24 * 3600, match_window)


HISTORY = [
    {"smsId": "121905361", "status": "ok", "recipient": "+33601010101", "date": "2017-09-25 17:41:00"},
    {
        "smsId": "121905361",
        "status": "rep",
        "recipient": "+33601010101",
        "date": "2017-09-25 17:41:26",
        "description": "SMS répondu",
        "response": "Yes, this open day can interest me",
    },
]


def look_up(history: list[dict], at: datetime) -> list:
    events, bad = parse_records(history, ParseContext(received_at=at), PARIS)
    assert not bad
    return events


def stored(store: Ingest, events: list) -> list[tuple[str, bool]]:
    return [(e.kind.value, new) for e, new in zip(events, store.store(events), strict=True)]


def test_digitaleo_look_up_repeated_brings_no_new_event(redis):
    store = ingest(redis)
    first = look_up(HISTORY, datetime(2024, 1, 1, tzinfo=timezone.utc))
    assert stored(store, first) == [("receipt", True), ("receipt", True), ("reply", True)]
    # The next look-ups re-read the whole history, a minute and a day later.
    for later in (datetime(2024, 1, 1, 0, 1, tzinfo=timezone.utc), datetime(2024, 1, 2, tzinfo=timezone.utc)):
        assert stored(store, look_up(HISTORY, later)) == [("receipt", False), ("receipt", False), ("reply", False)]
    assert len(inbox(redis)) == 3
    # A second reply with the same words, later, is in the history as a record of its own.
    again = {**HISTORY[1], "date": "2017-09-26 09:00:00"}
    events = look_up([*HISTORY, again], datetime(2024, 1, 3, tzinfo=timezone.utc))
    assert [new for kind, new in stored(store, events) if kind == "reply"] == [False, True]
    assert [e["text"] for e in inbox(redis) if e["kind"] == "reply"] == [HISTORY[1]["response"]] * 2


def digitaleo_email(message_id: str) -> bytes:
    return (
        "From: Digitaleo <noreply@digitaleo.com>\r\nSubject: Response from +33601010101 to SMS #121905361\r\n"
        f"Date: Mon, 25 Sep 2017 17:41:30 +0200\r\nMessage-ID: {message_id}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        "Your SMS: Text message to be sent\r\nResponse: Yes, this open day can interest me\r\n"
    ).encode()


def test_digitaleo_response_email_and_api_look_up_are_one_reply(redis):
    store = ingest(redis)
    ctx = ParseContext(received_at=datetime(2024, 1, 1, tzinfo=timezone.utc))
    assert store.store(parse_email(digitaleo_email("<rep-1@digitaleo.com>"), ctx)) == [True]
    # The receipts are new; the reply is the email's copy.
    assert stored(store, look_up(HISTORY, ctx.received_at)) == [("receipt", True), ("receipt", True), ("reply", False)]
    assert stored(store, look_up(HISTORY, ctx.received_at)) == [
        ("receipt", False),
        ("receipt", False),
        ("reply", False),
    ]
    assert store.store(parse_email(digitaleo_email("<rep-1@digitaleo.com>"), ctx)) == [False]
    assert [e["kind"] for e in inbox(redis)] == ["reply", "receipt", "receipt"]


def test_smsc_incoming_sms_are_known_by_their_own_id(redis):
    store = ingest(redis)
    ctx = ParseContext(received_at=datetime(2024, 1, 1, tzinfo=timezone.utc))

    def incoming(sms_id: str):
        fields = {"id": sms_id, "phone": "79991234567", "mes": "YES", "to": "79990000000", "sent": "1700000000"}
        return smsc.parse_callback(fields, ctx)

    assert [store.store(incoming(i)) for i in ("501", "501", "502")] == [[True], [False], [True]]
    assert [e["message_id"] for e in inbox(redis)] == ["501", "502"]


def test_ogangi_inbound_messages_are_known_by_their_own_id(redis):
    store = ingest(redis)
    ctx = ParseContext(received_at=datetime(2024, 1, 1, tzinfo=timezone.utc))
    mo = {
        "id": "-1111",
        "from": "13056708084",
        "to": "19893653744",
        "text": "SI",
        "date": "2014-12-17T00:20:00.000-04:30",
    }

    def notified(message: dict):
        return ogangi.parse_notification(message, ctx, frozenset({"19893653744"}))

    # Posted again with the date written another way, it is the same message.
    again = {**mo, "date": "2014-12-17T04:50:00.000Z"}
    assert [store.store(notified(m)) for m in (mo, again, {**mo, "id": "-1112"})] == [[True], [False], [True]]
    assert [e["message_id"] for e in inbox(redis)] == ["-1111", "-1112"]


def test_receipts_keep_their_one_script_call_and_no_match(client, redis):
    redis.config_resetstat()
    answer = client.post(f"/redoxygen/receipt{TOKEN}", json={"Messages": {"Count": 1, "1": MESSAGE_1}}, headers=JSON)
    assert answer.status_code == 200 and answer.get_json()["accepted"] == 1
    stats = redis.info("commandstats")
    # A first EVALSHA on a fresh Redis fails NOSCRIPT and is retried once loaded: only what ran counts.
    scripts = sum(
        stats.get(f"cmdstat_{c}", {}).get(k, 0) * (1 if k == "calls" else -1)
        for c in ("evalsha", "eval")
        for k in ("calls", "failed_calls")
    )
    assert scripts == 1  # one round trip, as before
    # The only HINCRBYs are the console's live counts (telemetry/live.py): the event's minute and
    # total, and the callback's; none for reply matching.
    assert stats.get("cmdstat_hincrby", {}).get("calls", 0) == 3
    assert not redis.keys(f"{REPLIES_PREFIX}*")


def test_callback_and_email_copy_are_one_row_and_a_second_yes_another(redis, redis_server, sqlite_url):
    from handlers.database import init_db

    init_db(sqlite_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = process_env({"REDIS_URL": redis_server.url, "DATABASE_URL": sqlite_url, "WEBHOOK_SECRET": SECRET})
    yes = {**REPLY, "ReplyText": "YES"}

    def post(path: str, data, content_type: str | None = None) -> dict:
        headers = {**JSON, "Content-Type": content_type} if content_type else JSON
        response = requests.post(f"{base}{path}{TOKEN}", data=data, headers=headers, timeout=5)
        assert response.status_code == 200, response.text
        return response.json()

    def events():
        return rows(sqlite_url, "select event_id, kind, message_id, sender, text from sms_events order by id")

    with running(gunicorn(port), WORKER, env=env) as procs:
        wait_until_up(base, procs)
        first = post("/redoxygen/reply", yes)
        copy = post("/inbound/email", reply_email({**yes, "EmailId": "91"}), "message/rfc822")
        assert accepted(first, copy) == [1, 0]
        wait_for(lambda: len(events()) == 1, timeout=30)
        second = post("/redoxygen/reply", {**yes, "EmailId": "778900"})
        assert second["accepted"] == 1
        wait_for(lambda: len(events()) == 2, timeout=30)
        wait_for(lambda: redis.llen(INBOX) == 0 and queue_for(redis, "smshooks").count == 0, timeout=30)
    assert events() == [
        (first["event_ids"][0], "reply", "123", "+61409000000", "YES"),
        (second["event_ids"][0], "reply", "123", "+61409000000", "YES"),
    ]
