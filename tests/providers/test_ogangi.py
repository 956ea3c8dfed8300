"""OGANGI notifications: the <message> object in XML and JSON, one or many, with or without the envelope.

Where the samples come from: ogangi-rest-api.txt, the sendSMSByFile response. MESSAGE_1 and
MESSAGE_2 are its two <message> objects field for field; ENVELOPE_XML is that response as
the document prints it (root-less `<input>…</input> <status>…` fragments). JSON uses the
same names, as the brief for OGANGI asks (OGANGI publishes no JSON callback). An MO is a
message whose `to` is one of our short/long codes (the document's getShortcodes).
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, select

from handlers.db_schema import sms_events
from tests.conftest import SECRET, run_worker
from tests.webhook_cases import JSON, WebhookCases
from webhooks import create_app

URL = f"/ogangi/status?token={SECRET}"
SHORTCODE = "19893653744"  # the `from` of the document's messages: our long code

MESSAGE_1 = {
    "id": "-6710228708174720670",
    "carrier": "carrierName",
    "from": SHORTCODE,
    "to": "18133210984",
    "text": "OGANGI TEST MESSAGE",
    "status": "SENT_TO_CARRIER",
    "statusDescription": "Sent to Carrier",
    "encoding": "UTF-8",
    "date": "2014-12-17T00:12:13.571-04:30",
    "timezone": "America/Caracas",
    "clientId": "As223sdadq8d8287v5v",
}
MESSAGE_2 = {**MESSAGE_1, "id": "-8174720676710228700", "to": "13056708084", "date": "2013-09-17T10:13:59.176-04:30"}
MO = {
    "id": "-1111",
    "carrier": "carrierName",
    "from": "13056708084",
    "to": SHORTCODE,
    "text": "SI, confirmo 👍",
    "encoding": "UTF-8",
    "date": "2014-12-17T00:20:00.000-04:30",
    "timezone": "America/Caracas",
}


def message_xml(message: dict) -> str:
    return "<message>" + "".join(f"<{k}>{v}</{k}>" for k, v in message.items()) + "</message>"


ENVELOPE_XML = (
    "<input>sendSMS</input> <status>OK</status> <description>Completed</description> <result> <messages> "
    + message_xml(MESSAGE_1)
    + " "
    + message_xml(MESSAGE_2)
    + " </messages> </result>"
)


def queued(redis) -> list[dict]:
    return [json.loads(item) for item in redis.lrange("smshooks:inbox", 0, -1)]


class TestOgangiEndpoint(WebhookCases):
    url = "/ogangi/status"

    def valid_body(self):
        return {"data": message_xml(MESSAGE_1), "content_type": "application/xml"}

    def test_wrong_method_is_json_405(self, client):
        self.assert_json_error(client.get(self.url + f"?token={SECRET}"), 405)


@pytest.fixture
def mo_client(env):
    return create_app({**env, "OGANGI_SHORTCODES": f"0000000, {SHORTCODE}"}).test_client()


TWO = [
    pytest.param({"data": ENVELOPE_XML, "content_type": "application/xml"}, id="xml-envelope-as-documented"),
    pytest.param(
        {"data": '<?xml version="1.0" encoding="UTF-8"?>\n' + ENVELOPE_XML, "content_type": "text/xml"},
        id="xml-envelope-with-declaration",
    ),
    pytest.param(
        {"data": "<response>" + ENVELOPE_XML + "</response>", "content_type": "application/xml"},
        id="xml-envelope-in-a-root",
    ),
    pytest.param(
        {
            "data": "<messages>" + message_xml(MESSAGE_1) + message_xml(MESSAGE_2) + "</messages>",
            "content_type": "application/xml",
        },
        id="xml-messages",
    ),
    pytest.param(
        {
            "json": {
                "input": "sendSMS",
                "status": "OK",
                "description": "Completed",
                "result": {"messages": {"message": [MESSAGE_1, MESSAGE_2]}},
            }
        },
        id="json-envelope",
    ),
    pytest.param({"json": {"result": {"messages": [MESSAGE_1, MESSAGE_2]}}}, id="json-envelope-list"),
    pytest.param({"json": {"messages": [MESSAGE_1, MESSAGE_2]}}, id="json-messages"),
    pytest.param({"json": [MESSAGE_1, MESSAGE_2]}, id="json-list"),
]


@pytest.mark.parametrize("body", TWO)
def test_two_messages_in_every_shape(client, redis, body):
    response = client.post(URL, headers=JSON, **body)
    assert response.status_code == 200, response.data
    events = queued(redis)
    assert [(e["message_id"], e["recipient"]) for e in events] == [
        ("-6710228708174720670", "+18133210984"),
        ("-8174720676710228700", "+13056708084"),
    ]
    first = events[0]
    assert (first["kind"], first["status"], first["final"]) == ("receipt", "sent", False)
    assert (first["provider_status"], first["description"]) == ("SENT_TO_CARRIER", "Sent to Carrier")
    assert first["occurred_at"] == "2014-12-17T04:42:13.571000+00:00"
    assert first["raw"]["clientId"] == "As223sdadq8d8287v5v"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"data": message_xml(MESSAGE_1), "content_type": "application/xml"}, id="xml-message"),
        pytest.param({"json": MESSAGE_1}, id="json-flat"),
        pytest.param({"json": {"message": MESSAGE_1}}, id="json-message"),
        pytest.param(
            {"json": {"input": "getMessage", "status": "OK", "result": {"message": MESSAGE_1}}}, id="json-envelope-one"
        ),
    ],
)
def test_one_message(client, redis, body):
    assert client.post(URL, headers=JSON, **body).status_code == 200
    [event] = queued(redis)
    assert (event["message_id"], event["status"]) == ("-6710228708174720670", "sent")


PLAIN_NAMES = [
    ("DELIVERED", "delivered", True),
    ("DELIVRD", "delivered", True),
    ("FAILED", "failed", True),
    ("REJECTED", "failed", True),
    ("REJECTD", "failed", True),
    ("EXPIRED", "failed", True),
    ("UNDELIVERED", "failed", True),
    ("UNDELIV", "failed", True),
    ("SENT", "sent", False),
    ("SENT_TO_CARRIER", "sent", False),
    ("ENROUTE", "sent", False),
    ("QUEUED", "queued", False),
    ("ACCEPTED", "queued", False),
]


@pytest.mark.parametrize("raw_status,status,final", PLAIN_NAMES)
def test_plain_status_names_mean_what_they_say(client, redis, raw_status, status, final):
    for spelling in (raw_status, raw_status.lower(), raw_status.capitalize()):
        assert client.post(URL, json={**MESSAGE_1, "status": spelling}, headers=JSON).status_code == 200
        event = queued(redis)[-1]
        assert (event["kind"], event["status"], event["final"]) == ("receipt", status, final), spelling
        assert event["provider_status"] == spelling  # kept as OGANGI wrote it


def test_a_status_written_in_words_is_matched(client, redis):
    client.post(URL, json={**MESSAGE_1, "status": "Sent to Carrier"})
    assert queued(redis)[0]["status"] == "sent"


@pytest.mark.parametrize("raw_status", ["QUEUE", "sent_to_carrier_x", "DELIVERED_MAYBE", "0"])
def test_unrecognised_statuses_are_unknown_with_the_raw_code(client, redis, raw_status):
    client.post(URL, json={**MESSAGE_1, "status": raw_status, "statusDescription": "whatever"})
    [event] = queued(redis)
    assert (event["status"], event["final"], event["provider_status"]) == ("unknown", False, raw_status)
    assert event["description"] == "whatever"
    assert event["raw"]["status"] == raw_status and event["raw"]["clientId"] == MESSAGE_1["clientId"]


@pytest.mark.parametrize("raw_status", ["RECEIVED", "received", "INBOUND", "Inbound", "MO", "mo"])
def test_a_status_that_says_received_is_a_reply_without_shortcodes(client, redis, raw_status):
    mo = {**MO, "to": "0000000", "status": raw_status}  # not addressed to a configured code
    assert client.post(URL, json=mo, headers=JSON).status_code == 200
    [reply] = queued(redis)
    assert (reply["kind"], reply["status"], reply["final"]) == ("reply", "received", True)
    assert (reply["message_id"], reply["sender"], reply["text"]) == ("-1111", "+13056708084", "SI, confirmo 👍")
    assert reply["provider_status"] == raw_status


def test_a_received_status_needs_its_sender_and_text(client, redis):
    response = client.post(URL, json={"id": "5", "to": "0000000", "status": "RECEIVED"}, headers=JSON)
    assert response.status_code == 400
    assert set(response.get_json()["fields"]) == {"from", "text"}
    assert queued(redis) == []


def test_status_is_matched_case_insensitively_but_kept_as_sent(client, redis):
    client.post(URL, json={**MESSAGE_1, "status": "sent_to_carrier"})
    [event] = queued(redis)
    assert (event["status"], event["provider_status"]) == ("sent", "sent_to_carrier")


def test_a_date_without_offset_is_read_in_its_timezone(client, redis):
    client.post(URL, json={**MESSAGE_1, "date": "2014-12-17T00:12:13.571"})
    assert queued(redis)[0]["occurred_at"] == "2014-12-17T04:42:13.571000+00:00"  # Caracas was UTC-4:30


# --- inbound (MO) ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"json": MO}, id="json"),
        pytest.param({"data": message_xml(MO), "content_type": "application/xml"}, id="xml"),
        pytest.param(
            {"json": {"input": "notify", "status": "OK", "result": {"messages": [MO, MESSAGE_1]}}},
            id="json-mixed-with-a-receipt",
        ),
    ],
)
def test_a_message_to_our_code_is_a_reply(mo_client, redis, body):
    assert mo_client.post(URL, headers=JSON, **body).status_code == 200
    reply = queued(redis)[0]
    assert (reply["kind"], reply["status"], reply["final"]) == ("reply", "received", True)
    assert (reply["message_id"], reply["sender"], reply["recipient"]) == ("-1111", "+13056708084", SHORTCODE)
    assert reply["text"] == "SI, confirmo 👍"


def test_without_shortcodes_the_same_message_is_a_receipt(client, redis):
    response = client.post(URL, json={**MO, "status": "SENT_TO_CARRIER"}, headers=JSON)
    assert response.status_code == 200
    assert queued(redis)[0]["kind"] == "receipt"


def test_a_reply_needs_its_sender_and_text(mo_client, redis):
    response = mo_client.post(URL, json={"id": "5", "to": SHORTCODE}, headers=JSON)
    assert response.status_code == 400
    assert set(response.get_json()["fields"]) == {"from", "text"}


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body,fields",
    [
        ({**MESSAGE_1, "id": ""}, {"id"}),
        ({k: v for k, v in MESSAGE_1.items() if k != "status"}, {"status"}),
        ({**MESSAGE_1, "date": "17-12-2014 00:12"}, {"date"}),
        ({**MESSAGE_1, "date": "2014-12-17T00:12:13", "timezone": "Mars/Olympus"}, {"date"}),
        ({"messages": [MESSAGE_1, {"to": "1"}]}, {"messages.1.id", "messages.1.status"}),
        ({"messages": [MESSAGE_1, "text"]}, {"messages.1"}),
        ({"input": "sendSMS", "status": "OK", "result": {"messages": []}}, {"message"}),
    ],
)
def test_bad_notifications_name_each_bad_field(client, redis, body, fields):
    response = client.post(URL, json=body, headers=JSON)
    assert response.status_code == 400, response.data
    assert set(response.get_json()["fields"]) == fields
    assert redis.llen("smshooks:inbox") == 0


# --- end to end --------------------------------------------------------------------------------


def test_receipts_and_a_reply_reach_the_database(env, redis, sqlite_url):
    client = create_app({**env, "OGANGI_SHORTCODES": SHORTCODE}).test_client()
    assert client.post(URL, data=ENVELOPE_XML, content_type="application/xml").status_code == 200
    assert client.post(URL, json=MO).status_code == 200
    assert client.post(URL, json=MO).status_code == 200  # repeated: stored once
    run_worker(env)
    engine = create_engine(sqlite_url)
    with engine.connect() as conn:
        rows = conn.execute(select(sms_events).order_by(sms_events.c.id)).mappings().all()
    engine.dispose()
    assert [(r["provider"], r["kind"], r["status"], r["message_id"]) for r in rows] == [
        ("ogangi", "receipt", "sent", "-6710228708174720670"),
        ("ogangi", "receipt", "sent", "-8174720676710228700"),
        ("ogangi", "reply", "received", "-1111"),
    ]
    assert rows[2]["text"] == "SI, confirmo 👍"
