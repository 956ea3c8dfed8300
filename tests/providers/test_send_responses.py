"""Send responses (webhooks/providers/send_responses.py), from the providers' documents in ../shared/providers/."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tests.redoxygen_samples import SENDSMS_RESPONSE
from webhooks.events import Kind, Status
from webhooks.providers import ParseContext, ParseError, redoxygen, smsc
from webhooks.providers.send_responses import MAX_MESSAGES, TooManyMessages, parse_sent

CTX = ParseContext(received_at=datetime(2026, 12, 2, 4, 0, tzinfo=timezone.utc))


def errors_of(body, query=None, ctx=CTX) -> dict[str, list[str]]:
    with pytest.raises(ParseError) as caught:
        parse_sent(body, ctx, query)
    return caught.value.errors


# --------------------------------------------------------------------------- Red Oxygen


def test_sendsms_response_gives_one_queued_event_per_numbered_message():
    events = parse_sent({"provider": "redoxygen", "response": SENDSMS_RESPONSE}, CTX)
    assert [(e.provider, e.message_id, e.recipient) for e in events] == [
        ("redoxygen", "123", "+61111222333"),
        ("redoxygen", "124", "+61111222334"),
    ]
    for event in events:
        assert event.kind is Kind.RECEIPT and event.status is Status.QUEUED and event.final is False
        assert event.provider_status == "0000"
        assert event.description == "Queued (recorded from the send response)"
        assert event.occurred_at == datetime(2024, 9, 20, 4, 39, 13, 819000, tzinfo=timezone.utc)
        assert event.received_at == CTX.received_at
    assert events[0].raw["SMSId"] == 123
    assert len({e.event_id for e in events}) == 2


def test_the_same_response_twice_gets_the_same_ids_whenever_it_arrives():
    later = ParseContext(received_at=datetime(2026, 12, 3, tzinfo=timezone.utc))
    first = parse_sent({"provider": "redoxygen", "response": SENDSMS_RESPONSE}, CTX)
    again = parse_sent({"provider": "redoxygen", "response": SENDSMS_RESPONSE}, later)
    assert [e.event_id for e in first] == [e.event_id for e in again]


def test_ids_differ_from_the_receipt_callbacks_but_the_message_is_the_same():
    sent = parse_sent({"provider": "redoxygen", "response": SENDSMS_RESPONSE}, CTX)[0]
    receipt = redoxygen.parse_receipt({"Messages": {"Count": 1, "1": SENDSMS_RESPONSE["Messages"]["1"]}}, CTX)[0]
    assert (receipt.provider, receipt.message_id, receipt.recipient) == (sent.provider, sent.message_id, sent.recipient)
    assert receipt.event_id != sent.event_id


def test_an_error_result_is_a_final_failure_with_the_documents_words():
    response = {
        "Messages": {
            "Count": 2,
            "1": {"SMSId": 7, "DestTn": "+61111222333", "Result": "2015"},
            "2": {"SMSId": 8, "DestTn": "+61111222334", "Result": 2099, "ResultText": "Invalid destination"},
        }
    }
    first, second = parse_sent({"provider": "redoxygen", "response": response}, CTX)
    assert (first.status, first.final, first.provider_status) == (Status.FAILED, True, "2015")
    assert first.description == "sending error (2011-2100) (recorded from the send response)"
    assert (second.status, second.final, second.provider_status) == (Status.FAILED, True, "2099")
    assert second.description == "Invalid destination (recorded from the send response)"


def test_a_code_the_document_does_not_list_is_unknown_not_final():
    response = {"Messages": {"1": {"SMSId": 7, "Result": "9999"}}}
    (event,) = parse_sent({"provider": "redoxygen", "response": response}, CTX)
    assert (event.status, event.final, event.provider_status) == (Status.UNKNOWN, False, "9999")


def test_a_refused_request_has_no_message_to_record():
    refused = {"Name": "ROX_API_Response", "Result": "2003", "ResultText": "Invalid password", "Version": "1.1"}
    errors = errors_of({"provider": "redoxygen", "response": refused})
    assert "2003" in errors["Result"][0] and "Invalid password" in errors["Result"][0]


def test_every_bad_field_is_named_in_red_oxygens_spelling():
    response = {"Messages": {"1": {"DestTn": "+61111222333", "Result": "0000"}, "2": {"SMSId": 5, "Result": []}}}
    errors = errors_of({"provider": "redoxygen", "response": response})
    assert set(errors) == {"Messages.1.SMSId", "Messages.2.Result"}


def test_provider_from_the_query_with_the_response_itself_as_the_body():
    events = parse_sent(SENDSMS_RESPONSE, CTX, {"provider": "redoxygen"})
    assert [e.message_id for e in events] == ["123", "124"]
    assert errors_of({"provider": "smsc", "response": {}}, {"provider": "redoxygen"})["provider"]


@pytest.mark.parametrize("provider", [None, "twilio", "ogangi"])
def test_the_envelope_must_name_a_provider_whose_response_is_read(provider):
    errors = errors_of({"provider": provider, "response": SENDSMS_RESPONSE})
    assert "redoxygen" in errors["provider"][0] and "plain form" in errors["provider"][0]


# --------------------------------------------------------------------------- Digitaleo


def test_digitaleo_created_resource_each_sms_id():
    # digitaleo-sms-api.txt 1.4.3 (create -> the resource created) and 3.3 (the sms resource's properties).
    created = {"id": "121905361", "status": "wait", "recipient": "+33696300056", "text": "Text message to be sent"}
    (event,) = parse_sent({"provider": "digitaleo", "response": created}, CTX)
    assert (event.provider, event.message_id, event.recipient) == ("digitaleo", "121905361", "+33696300056")
    assert (event.status, event.final, event.provider_status) == (Status.QUEUED, False, "wait")


def test_digitaleo_list_shape_and_recipients_beside_it():
    listing = {"size": 2, "total": 2, "list": [{"id": 121905361}, {"id": "121905362"}]}
    body = {"provider": "digitaleo", "response": listing, "recipients": ["+33601010101", "+33602020202"]}
    events = parse_sent(body, CTX)
    assert [(e.message_id, e.recipient, e.provider_status) for e in events] == [
        ("121905361", "+33601010101", "sent"),
        ("121905362", "+33602020202", "sent"),
    ]
    assert errors_of({**body, "recipients": ["+33601010101"]})["recipients"]


def test_digitaleo_error_answer_and_bad_ids():
    # 1.6: the body of an error answer.
    assert (
        "Authenticate failed"
        in errors_of({"provider": "digitaleo", "response": {"status": 401, "message": "Authenticate failed"}})["id"][0]
    )
    assert set(errors_of({"provider": "digitaleo", "response": [{"id": "abc"}, {"id": 5}, 7]})) == {"0.id", "2"}


# --------------------------------------------------------------------------- SMSC


def test_smsc_answer_names_each_phone_as_its_callbacks_do():
    body = {"provider": "smsc", "response": {"id": 12, "cnt": 2}, "phones": "79999999999;+79999999998"}
    events = parse_sent(body, CTX)
    assert [(e.message_id, e.recipient, e.status) for e in events] == [
        ("12", "+79999999999", Status.QUEUED),
        ("12", "+79999999998", Status.QUEUED),
    ]
    assert events[0].event_id != events[1].event_id
    # A later status callback (smsc.py) names the same message: the send's id, the phone normalised alike.
    (status,) = smsc.parse_callback({"id": "12", "phone": "79999999999", "status": "1"}, CTX)
    assert (status.message_id, status.recipient) == (events[0].message_id, events[0].recipient)


def test_smsc_text_answers_of_the_document():
    # smsc-smtp-api.txt: "OK - <n> SMS, ID - <id>" and "ERROR = N (description), ID - <id>".
    (ok,) = parse_sent({"provider": "smsc", "response": "OK - 1 SMS, ID - 77", "recipients": ["79999999999"]}, CTX)
    assert (ok.message_id, ok.status, ok.final) == ("77", Status.QUEUED, False)
    (bad,) = parse_sent(
        {"provider": "smsc", "response": "ERROR = 7 (invalid number), ID - 78", "recipients": ["12"]}, CTX
    )
    assert (bad.message_id, bad.status, bad.final, bad.provider_status) == ("78", Status.FAILED, True, "error 7")
    assert bad.description == "invalid phone number format (recorded from the send response)"
    assert (
        "no id" in errors_of({"provider": "smsc", "response": "ERROR = 2 (bad login)", "recipients": ["1"]})["error"][0]
    )


def test_smsc_json_error_with_an_id_and_phones_from_the_answer():
    answer = {"error": "denied", "error_code": 6, "id": 90, "phones": [{"phone": "79999999999", "status": "-2"}]}
    (event,) = parse_sent({"provider": "smsc", "response": answer}, CTX)
    assert (event.message_id, event.recipient, event.status) == ("90", "+79999999999", Status.FAILED)
    assert event.description.startswith("message denied")


def test_smsc_needs_the_phones_and_an_id():
    assert "phones" in errors_of({"provider": "smsc", "response": {"id": 12, "cnt": 1}})["recipients"][0]
    assert errors_of({"provider": "smsc", "response": {"cnt": 1}, "phones": "79999999999"})["id"]
    assert errors_of({"provider": "smsc", "response": 12, "phones": "79999999999"})["response"]


# --------------------------------------------------------------------------- the plain form


def test_plain_form_one_a_list_or_messages():
    ctx = ParseContext(received_at=CTX.received_at, phone_region="AU")
    one = parse_sent({"provider": "ogangi", "message_id": 5, "recipient": "0409000123"}, ctx)
    assert [(e.provider, e.message_id, e.recipient) for e in one] == [("ogangi", "5", "+61409000123")]
    listed = parse_sent([{"provider": "smsc", "message_id": "a"}, {"provider": "redoxygen", "message_id": "b"}], ctx)
    assert [(e.provider, e.message_id, e.recipient) for e in listed] == [("smsc", "a", None), ("redoxygen", "b", None)]
    wrapped = parse_sent({"provider": "digitaleo", "messages": [{"message_id": "1"}, {"message_id": "2"}]}, ctx)
    assert [e.provider for e in wrapped] == ["digitaleo", "digitaleo"]
    assert all(e.status is Status.QUEUED and e.provider_status == "sent" for e in one + listed + wrapped)
    assert one[0].description == "Recorded from the send response"


def test_plain_form_sent_at_is_the_events_time_and_part_of_its_id():
    base = {"provider": "ogangi", "message_id": "5"}
    (timed,) = parse_sent({**base, "sent_at": "2026-12-01T10:00:00+01:00"}, CTX)
    (untimed,) = parse_sent(base, CTX)
    assert timed.occurred_at == datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
    assert untimed.occurred_at == CTX.received_at
    assert timed.event_id != untimed.event_id


def test_plain_form_names_every_bad_field():
    errors = errors_of([{"provider": "nope", "message_id": ""}, {"provider": "smsc", "sent_at": "soon"}, "x"])
    assert set(errors) == {"0.provider", "0.message_id", "1.message_id", "1.sent_at", "2"}
    assert errors_of({"something": "else"})["message_id"] == ["missing"]
    assert errors_of([])["_body"]


# --------------------------------------------------------------------------- limits


def test_at_most_max_messages_per_request():
    plain = [{"provider": "ogangi", "message_id": str(i)} for i in range(MAX_MESSAGES)]
    assert len(parse_sent(plain, CTX)) == MAX_MESSAGES
    with pytest.raises(TooManyMessages) as caught:
        parse_sent([*plain, {"provider": "ogangi", "message_id": "x"}], CTX)
    assert str(MAX_MESSAGES) in caught.value.errors["_body"][0]
    with pytest.raises(TooManyMessages):
        parse_sent({"provider": "smsc", "response": {"id": 1}, "phones": ["7999"] * (MAX_MESSAGES + 1)}, CTX)
    numbered = {str(i): {"SMSId": i, "Result": "0000"} for i in range(1, MAX_MESSAGES + 2)}
    with pytest.raises(TooManyMessages):
        parse_sent({"provider": "redoxygen", "response": {"Messages": numbered}}, CTX)


@pytest.mark.parametrize("provider", [{}, [], 5, True])
def test_a_provider_that_is_not_text_is_a_field_error(provider):
    assert errors_of({"provider": provider, "response": None})["provider"]
    assert errors_of([{"provider": provider, "message_id": "1"}])["0.provider"]


def test_a_recipient_longer_than_the_database_keeps_is_refused():
    long = "+" + "1" * 64
    assert errors_of({"provider": "digitaleo", "response": {"id": 5, "recipient": long}})["recipient"]
    assert errors_of({"provider": "smsc", "response": {"id": 5, "phones": [{"phone": long}]}})["recipient"]
