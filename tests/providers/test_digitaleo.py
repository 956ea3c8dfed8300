"""Digitaleo: the ping endpoint (shared cases, coalescing, bad ids) and status records read as events."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import SECRET
from tests.webhook_cases import JSON, WebhookCases
from webhooks import create_app
from webhooks.events import Kind, Status, reply_event_id, reply_match_key
from webhooks.pipeline.queueing import queue_for
from webhooks.providers import ParseContext
from webhooks.providers.digitaleo.ping import parse_ping
from webhooks.providers.digitaleo.statuses import parse_record, parse_records, records
from webhooks.providers.digitaleo.sync import DUE, OPEN, PENDING

PARIS = ZoneInfo("Europe/Paris")
CTX = ParseContext(received_at=datetime(2024, 1, 1, tzinfo=timezone.utc), phone_region="FR")

# The /smsstatus example of section 3.12, with the recipient the client asks for.
HISTORY = {
    "size": 4,
    "total": None,
    "httpStatusCode": 200,
    "list": [
        {
            "smsId": "121905361",
            "status": "wait",
            "description": "SMS programmé",
            "date": "2017-09-25 17:41:00",
            "response": None,
            "recipient": "0601010101",
        },
        {
            "smsId": "121905361",
            "status": "ok",
            "description": "SMS reçu",
            "date": "2017-09-25 17:41:00",
            "response": None,
            "recipient": "0601010101",
        },
        {
            "smsId": "121905361",
            "status": "on",
            "description": "En cours",
            "date": "2017-09-25 17:41:01",
            "response": None,
            "recipient": "0601010101",
        },
        {
            "smsId": "121905361",
            "status": "rep",
            "description": "SMS répondu",
            "date": "2017-09-25 17:41:26",
            "response": "Yes, this open day can interest me",
            "recipient": "0601010101",
        },
    ],
}


class TestPingEndpoint(WebhookCases):
    url = "/digitaleo/ping"

    def valid_body(self):
        return {"data": {"sms_id": "121905361"}}

    def test_valid_callback_is_accepted(self, client, redis):
        # A ping carries no event: it is recorded and one sync is scheduled; the inbox stays empty.
        response = self.post(client, **self.valid_body())
        assert response.status_code == 200, response.data
        assert response.get_json()["accepted"] == 1
        assert redis.exists(DUE)
        assert redis.llen("smshooks:inbox") == 0


def test_get_ping_as_digitaleo_sends_it(client, redis):
    response = client.get(f"/digitaleo/ping?token={SECRET}&sms_id=121905361")
    assert response.status_code == 200, response.data
    assert response.get_json() == {"accepted": 1, "sms_id": "121905361", "sync_scheduled": True}


@pytest.mark.parametrize(
    "query, expected",
    [
        ("", "missing"),
        ("&sms_id=", "missing"),
        ("&sms_id=abc", "'abc'"),
        ("&sms_id=12%2034", "'12 34'"),
        ("&sms_id=%C2%B9", "numeric"),
    ],
)
def test_missing_or_non_numeric_sms_id_is_400(client, redis, query, expected):
    response = client.get(f"/digitaleo/ping?token={SECRET}{query}", headers=JSON)
    assert response.status_code == 400, response.data
    assert expected in response.get_json()["fields"]["sms_id"][0]
    assert not redis.exists(DUE)


def test_a_burst_of_pings_schedules_one_sync(client, redis):
    answers = [client.get(f"/digitaleo/ping?token={SECRET}&sms_id={1000 + n}").get_json() for n in range(50)]
    assert [a["sync_scheduled"] for a in answers] == [True] + [False] * 49
    queue = queue_for(redis, "smshooks")
    assert queue.scheduled_job_registry.count == 1  # in DIGITALEO_PING_DELAY seconds, by RQ's scheduler
    assert queue.count == 0
    assert not redis.exists(PENDING)  # queue mode needs no ids: the queue says what changed


def test_lookup_mode_records_the_pinged_ids(env, redis):
    client = create_app({**env, "DIGITALEO_MODE": "lookup", "DIGITALEO_PING_DELAY": "0"}).test_client()
    for sms_id in ("7", "8", "7"):
        assert client.post(f"/digitaleo/ping?token={SECRET}", data={"sms_id": sms_id}).status_code == 200
    assert sorted(redis.smembers(PENDING)) == [b"7", b"8"]
    assert redis.zcard(OPEN) == 2
    assert queue_for(redis, "smshooks").count == 1  # no delay: enqueued at once, still only one


def test_parse_ping_names_the_field():
    assert parse_ping({"sms_id": " 42 "}) == "42"
    assert parse_ping({"sms_id": 42}) == "42"


def test_history_becomes_events_with_status_map_and_utc_times():
    events, bad = parse_records(records(HISTORY), CTX, PARIS)
    assert not bad
    receipts = [e for e in events if e.kind is Kind.RECEIPT]
    assert [(e.status, e.final, e.provider_status) for e in receipts] == [
        (Status.SCHEDULED, False, "wait"),
        (Status.DELIVERED, True, "ok"),
        (Status.SENT, False, "on"),
        (Status.REPLIED, True, "rep"),
    ]
    # 17:41:26 in Paris in September (UTC+2) is 15:41:26 UTC.
    assert receipts[3].occurred_at == datetime(2017, 9, 25, 15, 41, 26, tzinfo=timezone.utc)
    assert receipts[0].recipient == "+33601010101"
    assert receipts[3].description == "SMS répondu"
    assert receipts[3].raw == HISTORY["list"][3]  # the whole record, technical code included when sent


def test_rep_status_is_also_a_reply_known_by_its_records_date():
    events, _ = parse_records(records(HISTORY), CTX, PARIS)
    (reply,) = [e for e in events if e.kind is Kind.REPLY]
    assert reply.status is Status.RECEIVED and reply.final
    assert reply.text == "Yes, this open day can interest me"
    assert reply.sender == "+33601010101"
    text = "Yes, this open day can interest me"
    date = [r for r in HISTORY["list"] if r["status"] == "rep"][0]["date"]
    assert reply.event_id == reply_event_id("digitaleo", "121905361", "+33601010101", text, "api", (date,))
    assert reply.reply_copy is not None
    assert (reply.reply_copy.route, reply.reply_copy.distinct) == ("api", True)
    assert reply.reply_copy.match_key == reply_match_key("digitaleo", "121905361", "+33601010101", text)


def test_a_look_up_again_gives_the_same_reply_ids_and_a_second_reply_its_own():
    # Every look-up re-reads the message's whole history: a later look-up must hash the same.
    later = ParseContext(received_at=datetime(2030, 1, 1, tzinfo=timezone.utc))
    rep = {"smsId": 7, "status": "rep", "recipient": "+33601010101", "date": "2017-09-25 17:41:26", "response": "OUI"}
    second = {**rep, "date": "2017-09-26 09:00:00"}
    first_ids = [e.event_id for e in parse_records([rep], CTX, PARIS)[0] if e.kind is Kind.REPLY]
    again_ids = [e.event_id for e in parse_records([rep, second], later, PARIS)[0] if e.kind is Kind.REPLY]
    assert again_ids[0] == first_ids[0] and again_ids[1] != first_ids[0]
    undated = {k: v for k, v in rep.items() if k != "date"}
    (bare,) = [e for e in parse_record(undated, CTX, PARIS) if e.kind is Kind.REPLY]
    assert bare.reply_copy is not None and bare.reply_copy.distinct  # no date: still kept for DEDUPE_WINDOW


def test_winter_time_and_unknown_codes():
    (event,) = parse_record({"smsId": 5, "status": "N7", "date": "2024-01-10 10:00:00"}, CTX, PARIS)
    assert event.status is Status.UNKNOWN and event.provider_status == "n7" and not event.final
    assert event.occurred_at == datetime(2024, 1, 10, 9, 0, tzinfo=timezone.utc)
    (no,) = parse_record({"smsId": 5, "status": "no"}, CTX, PARIS)
    assert no.status is Status.UNKNOWN and no.occurred_at == CTX.received_at


def test_same_status_read_twice_gets_the_same_id():
    record = HISTORY["list"][1]
    first = parse_record(dict(record), CTX, PARIS)[0]
    again = parse_record(dict(record), ParseContext(received_at=datetime.now(timezone.utc)), PARIS)[0]
    assert first.event_id == again.event_id


def test_bad_records_are_set_aside_not_raised():
    events, bad = parse_records(
        [{"smsId": "x", "status": "ok"}, {"smsId": "9"}, "text", HISTORY["list"][1]], CTX, PARIS
    )
    assert [e.message_id for e in events] == ["121905361"]
    assert [reason.split(":")[0] for _, reason in bad] == ["smsId", "status", "_record"]


def test_ping_appended_blindly_to_the_registered_token_url(client, redis):
    # Registered as .../digitaleo/ping?token=<secret>; the platform adds "?sms_id=N" (section 2.11).
    response = client.get(f"/digitaleo/ping?token={SECRET}?sms_id=121905361")
    assert response.status_code == 200, response.data
    assert response.get_json()["sms_id"] == "121905361"
    assert client.get("/digitaleo/ping?token=wrong?sms_id=1").status_code == 401


def test_a_status_map_wins_and_final_follows_its_status():
    maps = {"digitaleo": {"no": Status.FAILED, "ok": Status.SENT}}
    ctx = ParseContext(received_at=CTX.received_at, status_maps=maps)
    (no,) = parse_record({"smsId": 5, "status": "NO"}, ctx, PARIS)
    (ok,) = parse_record({"smsId": 5, "status": "ok"}, ctx, PARIS)
    (ko,) = parse_record({"smsId": 5, "status": "ko"}, ctx, PARIS)
    assert [(e.status, e.final, e.provider_status) for e in (no, ok, ko)] == [
        (Status.FAILED, True, "no"),
        (Status.SENT, False, "ok"),  # the override beats the built-in "delivered", and is not final
        (Status.FAILED, True, "ko"),  # not in the map: the built-in table
    ]
    elsewhere = ParseContext(received_at=CTX.received_at, status_maps={"smsc": {"no": Status.FAILED}})
    assert parse_record({"smsId": 5, "status": "no"}, elsewhere, PARIS)[0].status is Status.UNKNOWN
