"""Red Oxygen receipts and replies: every accepted shape, the status map, and the <RESULT> answers."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from tests.conftest import SECRET
from tests.redoxygen_samples import MESSAGE_1, MESSAGE_2, REPLY
from tests.webhook_cases import JSON, WebhookCases

TOKEN = f"?token={SECRET}"


def queued(redis) -> list[dict]:
    return [json.loads(item) for item in redis.lrange("smshooks:inbox", 0, -1)]


class TestReceiptEndpoint(WebhookCases):
    url = "/redoxygen/receipt"

    def valid_body(self):
        return {"json": {"Messages": {"Count": 1, "1": MESSAGE_1}}}


class TestReplyEndpoint(WebhookCases):
    url = "/redoxygen/reply"

    def valid_body(self):
        return {"data": REPLY}


NUMBERED = {"Count": 2, "1": MESSAGE_1, "2": MESSAGE_2}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            {"json": {"Name": "ROX_API_Response", "Result": "0000", "Messages": {**NUMBERED, "RequestId": "1"}}},
            id="send-response-shape",
        ),
        pytest.param({"json": {"Messages": NUMBERED}}, id="json-messages-wrapper"),
        pytest.param({"json": NUMBERED}, id="json-numbered-no-wrapper"),
        pytest.param({"json": [MESSAGE_1, MESSAGE_2]}, id="json-list"),
        pytest.param(
            {"data": {f"Messages.{n}.{k}": v for n, m in (("1", MESSAGE_1), ("2", MESSAGE_2)) for k, v in m.items()}},
            id="form-dotted-numbered",
        ),
        pytest.param(
            {
                "data": (
                    "<ROX_API_Response><Messages><Count>2</Count>"
                    + "".join(
                        "<Message>" + "".join(f"<{k}>{v}</{k}>" for k, v in m.items()) + "</Message>"
                        for m in (MESSAGE_1, MESSAGE_2)
                    )
                    + "</Messages></ROX_API_Response>"
                ),
                "content_type": "application/xml",
            },
            id="xml-message-list",
        ),
    ],
)
def test_receipt_shapes_with_two_messages(client, redis, body):
    response = client.post(f"/redoxygen/receipt{TOKEN}", headers=JSON, **body)
    assert response.status_code == 200, response.data
    events = queued(redis)
    assert [(e["message_id"], e["status"], e["final"], e["provider_status"]) for e in events] == [
        ("123", "delivered", True, "0000"),
        ("124", "failed", True, "2015"),
    ]
    assert events[0]["recipient"] == "+61111222333"
    assert events[0]["occurred_at"] == "2024-09-20T04:39:13.819000+00:00"
    assert events[1]["description"] == "Invalid destination"


@pytest.mark.parametrize(
    "send",
    [
        pytest.param(lambda c, q: c.post(f"/redoxygen/receipt{q}", json=MESSAGE_1), id="json-flat"),
        pytest.param(lambda c, q: c.post(f"/redoxygen/receipt{q}", data=MESSAGE_1), id="form-flat"),
        pytest.param(lambda c, q: c.get(f"/redoxygen/receipt{q}&{urlencode(MESSAGE_1)}"), id="query-string"),
        pytest.param(
            lambda c, q: c.post(
                f"/redoxygen/receipt{q}",
                content_type="text/xml",
                data="<Receipt>" + "".join(f"<{k}>{v}</{k}>" for k, v in MESSAGE_1.items()) + "</Receipt>",
            ),
            id="xml-flat",
        ),
        pytest.param(
            lambda c, q: c.post(f"/redoxygen/receipt{q}", json={k.lower(): v for k, v in MESSAGE_1.items()}),
            id="lowercase-names",
        ),
        pytest.param(
            lambda c, q: c.post(f"/redoxygen/receipt{q}", json={k.upper(): v for k, v in MESSAGE_1.items()}),
            id="uppercase-names",
        ),
        pytest.param(
            lambda c, q: c.post(f"/redoxygen/receipt{q}", data=json.dumps(MESSAGE_1), content_type=""),
            id="json-without-content-type",
        ),
    ],
)
def test_flat_receipt_shapes(client, redis, send):
    response = send(client, TOKEN)
    assert response.status_code == 200, response.data
    assert b"<RESULT>000</RESULT>" in response.data
    [event] = queued(redis)
    assert (event["message_id"], event["status"], event["recipient"]) == ("123", "delivered", "+61111222333")
    assert "token" not in event["raw"]


@pytest.mark.parametrize(
    "result,status,final",
    [
        ("0000", "delivered", True),
        (0, "delivered", True),
        ("2011", "failed", True),
        ("2100", "failed", True),
        ("2005", "failed", True),
        ("2101", "unknown", False),
        ("9999", "unknown", False),
        ("ABC", "unknown", False),
        ("٢٠١٥", "unknown", False),
    ],
)
def test_result_codes(client, redis, result, status, final):
    response = client.post(f"/redoxygen/receipt{TOKEN}", json={**MESSAGE_1, "Result": result})
    assert response.status_code == 200, response.data
    [event] = queued(redis)
    assert (event["status"], event["final"]) == (status, final)
    assert event["provider_status"] == (str(result).zfill(4) if str(result).isdigit() else str(result))


@pytest.mark.parametrize(
    "send",
    [
        pytest.param(lambda c, q: c.post(f"/redoxygen/reply{q}", data=REPLY), id="form"),
        pytest.param(lambda c, q: c.get(f"/redoxygen/reply{q}&{urlencode(REPLY)}"), id="query-string"),
        pytest.param(
            lambda c, q: c.post(
                f"/redoxygen/reply{q}",
                content_type="application/xml",
                data=(
                    "<?xml version='1.0' encoding='utf-8'?><Reply>"
                    + "".join(f"<{k}>{v.replace('&', '&amp;')}</{k}>" for k, v in REPLY.items())
                    + "</Reply>"
                ),
            ),
            id="xml",
        ),
    ],
)
def test_reply_contract(client, redis, send):
    response = send(client, TOKEN)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert b"<RESULT>000</RESULT>" in response.data
    [event] = queued(redis)
    assert event["kind"] == "reply" and event["status"] == "received" and event["final"] is True
    assert event["message_id"] == "123"
    assert event["sender"] == "+61409000000"
    assert event["text"] == "Yes, see you at 10"
    # The registered ReplyURL carries our token: it must not survive into the stored event.
    assert SECRET not in json.dumps(event)
    assert event["raw"]["ReplyURL"].endswith("token=[secret]")


def test_reply_text_keeps_newlines_markup_and_unicode(client, redis):
    text = "Oui <b>merci</b>\r\nÀ demain 😊 & bye"
    assert client.post(f"/redoxygen/reply{TOKEN}", data={**REPLY, "ReplyText": text}).status_code == 200
    assert queued(redis)[0]["text"] == text


def test_a_second_reply_with_the_same_words_is_a_second_event(client, redis):
    # Red Oxygen gives a reply no time; its EmailId is what tells "YES" sent twice from one
    # "YES" posted twice (its copy by email is matched by Ingest.store, tests/pipeline/test_reply_matching.py).
    from webhooks.events import reply_event_id

    first = client.post(f"/redoxygen/reply{TOKEN}", data=REPLY, headers=JSON).get_json()
    again = client.post(f"/redoxygen/reply{TOKEN}", data=REPLY, headers=JSON).get_json()
    second = client.post(f"/redoxygen/reply{TOKEN}", data={**REPLY, "EmailId": "778900"}, headers=JSON).get_json()
    facts = ("778899",)
    assert first["event_ids"] == [
        reply_event_id("redoxygen", "123", "+61409000000", REPLY["ReplyText"], "callback", facts)
    ]
    assert (again["accepted"], again["duplicates"]) == (0, 1)
    assert (second["accepted"], second["duplicates"]) == (1, 0)
    assert second["event_ids"] != first["event_ids"]
    assert [e["text"] for e in queued(redis)] == [REPLY["ReplyText"]] * 2


def test_national_numbers_use_the_configured_region(env, redis):
    from webhooks import create_app

    client = create_app({**env, "PHONE_REGION": "AU"}).test_client()
    client.post(f"/redoxygen/reply{TOKEN}", data={**REPLY, "DestTN": "0409 000 001"})
    assert queued(redis)[0]["sender"] == "+61409000001"


def test_unreadable_number_is_kept_as_sent(client, redis):
    client.post(f"/redoxygen/reply{TOKEN}", data={**REPLY, "DestTN": "SHORTCODE"})
    assert queued(redis)[0]["sender"] == "SHORTCODE"


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body,fields",
    [
        ({"Messages": {"1": {"DestTn": "+61111222333", "Result": "0000"}}}, {"Messages.1.SMSId"}),
        ({"SMSId": 5}, {"Result"}),
        ({"SMSId": {"nested": 1}, "Result": "0000"}, {"SMSId"}),
        ({"SMSId": True, "Result": "0000"}, {"SMSId"}),
        ({"SMSId": 5, "Result": ["0000"]}, {"Result"}),
        ({"SMSId": 5, "Result": "0000", "Timestamp": "yesterday"}, {"Timestamp"}),
        ({"SMSId": 5, "Result": "0000", "Timestamp": 1700000000}, {"Timestamp"}),
        ({"SMSId": "", "Result": "0000"}, {"SMSId"}),
        ({"Messages": {"1": MESSAGE_1, "2": {"SMSId": 9}}}, {"Messages.2.Result"}),
        ({"Messages": {"1": "not an object"}}, {"Messages.1"}),
        ({}, {"SMSId", "Result"}),
        ({"¹": {"SMSId": 1}, "٣": "x"}, {"0.Result"}),  # digits to str.isdigit(), not to int()
    ],
)
def test_bad_receipts_name_each_bad_field(client, redis, body, fields):
    response = client.post(f"/redoxygen/receipt{TOKEN}", json=body, headers=JSON)
    assert response.status_code == 400, response.data
    assert set(response.get_json()["fields"]) == fields
    assert redis.llen("smshooks:inbox") == 0, "a partly bad receipt must store nothing"


def test_bad_receipt_answers_result_form_by_default(client):
    response = client.post(f"/redoxygen/receipt{TOKEN}", json={"SMSId": 5})
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert b"<RESULT>100</RESULT>" in response.data
    assert b"Result: Missing data for required field." in response.data


@pytest.mark.parametrize("missing", ["SmsId", "DestTN", "ReplyText"])
def test_reply_missing_field_is_400(client, redis, missing):
    body = {k: v for k, v in REPLY.items() if k != missing}
    response = client.post(f"/redoxygen/reply{TOKEN}", data=body, headers=JSON)
    assert response.status_code == 400
    assert missing in response.get_json()["fields"]
    assert redis.llen("smshooks:inbox") == 0


def test_empty_callback_is_400(client):
    response = client.post(f"/redoxygen/reply{TOKEN}", headers=JSON)
    assert response.status_code == 400
    assert set(response.get_json()["fields"]) == {"SmsId", "DestTN", "ReplyText"}


def test_unparsed_callback_is_logged_at_debug_without_secret(client, caplog):
    caplog.set_level("DEBUG", logger="webhooks.endpoint")
    client.post(f"/redoxygen/receipt{TOKEN}&extra=1", json={"Odd": "shape", "echo": SECRET})
    [record] = [r for r in caplog.records if r.message.startswith("unparsed")]
    assert "Odd" in record.message and "extra=1" in record.message
    assert SECRET not in record.message
