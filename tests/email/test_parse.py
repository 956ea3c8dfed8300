"""Provider emails into events (pure): every format and charset, the same ids as the callbacks, unknowns kept."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from tests.conftest import SECRET
from tests.email_samples import (
    DIGITALEO_TEXT,
    RECEIPT_FIELDS,
    REDOXYGEN_RECEIPT,
    REPLY_FIELDS,
    UNKNOWN,
    digitaleo_response,
    redoxygen_reply_alternative,
    redoxygen_reply_html_only,
)
from webhooks.email.parse import KEEP_CHARS, fields_by_line, parse_email, response_text
from webhooks.email.text import body_text, html_to_text, read_message
from webhooks.events import EVENT_SCHEMA, Kind, Status, reply_event_id
from webhooks.providers import ParseContext, redoxygen
from webhooks.telemetry.redaction import scrub

CTX = ParseContext(received_at=datetime(2024, 9, 20, 5, 0, tzinfo=timezone.utc))


def parse(raw: bytes, ctx: ParseContext = CTX):
    return parse_email(raw, ctx, SECRET)


def test_redoxygen_receipt_is_the_callbacks_event():
    [event] = parse(REDOXYGEN_RECEIPT)
    [callback] = redoxygen.parse_receipt(RECEIPT_FIELDS, CTX)
    assert event == callback  # every field, the id and raw included
    assert (event.kind, event.status, event.final, event.message_id) == (Kind.RECEIPT, Status.DELIVERED, True, "123")


def test_redoxygen_reply_multipart_quoted_printable_is_the_callbacks_reply():
    text = "Oui, à demain 10h — merci !"
    [event] = parse(redoxygen_reply_alternative(text))
    [callback] = redoxygen.parse_reply(scrub({**REPLY_FIELDS, "ReplyText": text}, SECRET), CTX)
    # Ids of their own (the email's Message-ID, the callback's EmailId); one match key, so Ingest.store
    # takes the email for the callback's copy (tests/pipeline/test_reply_matching.py).
    facts = (REPLY_FIELDS["EmailId"], "<reply-123@redoxygen.net>", "0")
    assert event.event_id == reply_event_id("redoxygen", "123", "+61409000000", text, "email", facts)
    assert event.event_id != callback.event_id
    assert event.reply_copy is not None and callback.reply_copy is not None
    assert event.reply_copy.match_key == callback.reply_copy.match_key
    assert (event.reply_copy.route, callback.reply_copy.route) == ("email", "callback")
    assert event.text == callback.text and event.raw == callback.raw
    assert (event.kind, event.text, event.sender, event.description) == (
        Kind.REPLY,
        text,
        "+61409000000",
        "Reply from John",
    )
    assert SECRET not in json.dumps(EVENT_SCHEMA.dump(event))


@pytest.mark.parametrize(
    "charset,text",
    [
        ("iso-8859-1", "Très bien, à demain"),
        ("windows-1252", "D’accord – “10h” ça marche €"),
        ("koi8-r", "Да, увидимся в 10"),
        ("utf-8", "Ja, bis morgen 😊"),
    ],
)
def test_redoxygen_reply_html_only_in_each_charset(charset, text):
    [event] = parse(redoxygen_reply_html_only(text, charset))
    assert event.kind is Kind.REPLY
    assert event.text == text
    # No Message-ID nor Date in this sample: the EmailId in the body is the one fact of the reply.
    assert event.event_id == reply_event_id(
        "redoxygen", "123", "+61409000000", text, "email", (REPLY_FIELDS["EmailId"],)
    )


def test_multiline_reply_text_runs_to_the_next_field_and_stops_at_a_signature():
    raw = (
        "From: noreply@redoxygen.net\r\nSubject: SMS reply\r\n\r\nSmsId: 123\r\nDestTN: 61409000000\r\n"
        "ReplyText: Yes.\r\nBring the forms\r\n\r\nthanks\r\n-- \r\nRed Oxygen\r\n"
    ).encode()
    [event] = parse(raw)
    assert event.text == "Yes.\nBring the forms\n\nthanks"


def test_several_receipts_in_one_email():
    second = {**RECEIPT_FIELDS, "SMSId": "124", "Result": "2015", "ResultText": "Invalid destination"}
    raw = REDOXYGEN_RECEIPT + b"\r\n" + "".join(f"{k} = {v}\r\n" for k, v in second.items()).encode()
    events = parse(raw)
    assert [(e.message_id, e.status) for e in events] == [("123", Status.DELIVERED), ("124", Status.FAILED)]


def test_redoxygen_fields_that_do_not_parse_are_kept_as_unknown():
    raw = REDOXYGEN_RECEIPT.replace(b"2024-09-20T04:39:13.819Z", b"yesterday")
    [event] = parse(raw)
    assert (event.provider, event.kind, event.status) == ("redoxygen", Kind.UNKNOWN, Status.UNKNOWN)
    assert "Timestamp" in event.description
    assert b"yesterday" in event.raw["mime"].encode()


# --- Digitaleo ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(digitaleo_response(DIGITALEO_TEXT), id="text-labelled"),
        pytest.param(
            digitaleo_response(
                "Text message to be sent\r\n\r\nYes, this open day can interest me\r\n", encoding="quoted-printable"
            ),
            id="text-two-paragraphs-qp",
        ),
        pytest.param(
            digitaleo_response(
                "<html><body><p>Your SMS: <i>Text message to be sent</i></p>"
                "<p>Response: Yes, this open day can interest me</p></body></html>",
                subtype="html",
                encoding="base64",
            ),
            id="html-base64",
        ),
        pytest.param(
            digitaleo_response(
                "<table><tr><th>SMS</th><td>Text message to be sent</td></tr><tr><th>Response"
                "</th><td>Yes, this open day can interest me</td></tr></table>",
                subtype="html",
                charset="windows-1252",
            ),
            id="html-table",
        ),
        pytest.param(
            digitaleo_response(DIGITALEO_TEXT, subject="Fwd: Response from 801 555 0123 to SMS #121905361"),
            id="forwarded-subject",
        ),
    ],
)
def test_digitaleo_response(raw):
    [event] = parse(raw)
    text = "Yes, this open day can interest me"
    assert (event.provider, event.kind, event.status, event.final) == ("digitaleo", Kind.REPLY, Status.RECEIVED, True)
    assert (event.message_id, event.sender, event.text) == ("121905361", "801 555 0123", text)
    assert event.event_id == reply_event_id(
        "digitaleo", "121905361", "801 555 0123", text, "email", ("<rep-121905361@digitaleo.com>",)
    )
    assert event.reply_copy is not None and event.reply_copy.route == "email" and event.reply_copy.distinct
    assert event.occurred_at == datetime(2017, 9, 25, 15, 41, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "charset,label,response",
    [
        ("iso-8859-1", "Réponse", "Oui, ça m'intéresse"),
        ("windows-1252", "Réponse", "Oui – ça m’intéresse"),
        ("koi8-r", "Response", "Да, мне интересно"),
        ("utf-8", "Response", "Sí, me interesa 👍"),
    ],
)
def test_digitaleo_response_in_each_charset(charset, label, response):
    [event] = parse(digitaleo_response(f"Message : Texte du SMS\r\n{label} : {response}\r\n", charset=charset))
    assert event.text == response


def test_digitaleo_sender_uses_phone_region():
    [event] = parse(digitaleo_response(DIGITALEO_TEXT), ParseContext(received_at=CTX.received_at, phone_region="US"))
    assert event.sender == "+18015550123"


def test_digitaleo_subject_without_a_readable_response_is_unknown_for_that_sms():
    [event] = parse(digitaleo_response("one\r\n\r\ntwo\r\n\r\nthree\r\n"))
    assert (event.provider, event.kind, event.message_id) == ("digitaleo", Kind.UNKNOWN, "121905361")
    assert event.raw["text"] == "one\n\ntwo\n\nthree"


# --- charsets and unknowns ---------------------------------------------------------------------


def test_undeclared_charset_is_utf8_and_an_unknown_one_falls_back_to_utf8():
    body = "Response: Ça va 😊\r\n"
    for charset in (None, "x-no-such-charset"):
        [event] = parse(digitaleo_response(body, charset=charset))
        assert event.text == "Ça va 😊"


def test_bytes_that_do_not_match_the_declared_charset_are_replaced_not_refused():
    raw = digitaleo_response("Response: ok\r\n").replace(b"Response: ok", b"Response: ok \xff\xfe")
    [event] = parse(raw)
    assert event.text.startswith("ok ")


def test_unknown_email_is_kept_with_its_raw_message_and_no_secret():
    [event] = parse(UNKNOWN)
    assert (event.provider, event.kind, event.status, event.final) == ("email", Kind.UNKNOWN, Status.UNKNOWN, False)
    assert event.raw["subject"] == "Out of office" and event.raw["message_id"] == "<ooo-1@example.org>"
    assert "I am away until Monday" in event.raw["mime"] and "Out of office" in event.raw["mime"]
    dumped = json.dumps(EVENT_SCHEMA.dump(event))
    assert SECRET not in dumped and "token=[secret]" in dumped
    assert EVENT_SCHEMA.load(EVENT_SCHEMA.dump(event)) == event  # the wire form round-trips
    assert parse(UNKNOWN)[0].event_id == event.event_id  # the same email again: the same id


def test_unknown_email_raw_is_capped():
    big = UNKNOWN + b"x" * (3 * KEEP_CHARS)
    [event] = parse(big)
    assert len(event.raw["mime"]) == KEEP_CHARS and event.raw["mime_truncated"] is True
    assert len(event.raw["text"]) <= KEEP_CHARS


def test_deeply_nested_mime_is_kept_as_unknown_not_an_error():
    nesting = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i) for i in range(3000))
    [event] = parse(b"From: a@b\r\nSubject: deep\r\n" + nesting + b"Content-Type: text/plain\r\n\r\nhi\r\n")
    assert (event.kind, event.raw["subject"]) == (Kind.UNKNOWN, "deep")
    assert "nested too deeply" in event.description


def test_two_unknown_emails_are_two_events():
    other = UNKNOWN.replace(b"<ooo-1@", b"<ooo-2@")
    assert parse(UNKNOWN)[0].event_id != parse(other)[0].event_id


# --- the text itself ---------------------------------------------------------------------------


def test_html_to_text_blocks_cells_entities_and_hidden_parts():
    html = (
        "<html><head><title>t</title><style>p {}</style><script>x()</script></head><body>"
        "<div>Hello&nbsp;<b>World</b> &amp; co</div><table><tr><td>SMSId</td><td> 123 </td></tr></table>"
        "one<br>two<br/>three</body></html>"
    )
    assert html_to_text(html) == "Hello World & co\n\nSMSId\t123\n\none\ntwo\nthree"


def test_attachments_are_skipped_and_plain_text_is_preferred():
    raw = (
        b'From: a@b\r\nContent-Type: multipart/mixed; boundary="m"\r\n\r\n--m\r\n'
        b"Content-Type: text/plain\r\n\r\nbody\r\n--m\r\n"
        b'Content-Type: text/plain\r\nContent-Disposition: attachment; filename="x.txt"\r\n\r\nSMSId: 9\r\n'
        b"--m--\r\n"
    )
    assert body_text(read_message(raw)) == "body"


def test_fields_by_line_ignores_unrelated_lines():
    assert fields_by_line("Hello: there\nSMSId: 5\nResult: 0000\nRegards") == [{"SMSId": "5", "Result": "0000"}]
    assert fields_by_line("no fields at all") == []


def test_response_text_needs_a_label_or_two_paragraphs():
    assert response_text("Reply: yes\nplease") == "yes\nplease"
    assert response_text("only one paragraph") is None


def test_a_reply_email_is_known_by_its_message_id_else_its_date():
    def email(headers: str, email_id: str | None = None) -> bytes:
        fields = {k: v for k, v in REPLY_FIELDS.items() if k != "EmailId" or email_id is not None}
        if email_id is not None:
            fields["EmailId"] = email_id
        body = "".join(f"{k}: {v}\r\n" for k, v in fields.items())
        return f"From: noreply@redoxygen.net\r\nSubject: SMS reply\r\n{headers}\r\n{body}".encode()

    one = "Message-ID: <r-1@redoxygen.net>\r\nDate: Fri, 20 Sep 2024 04:40:02 +0000\r\n"
    [a], [again] = parse(email(one)), parse(email(one))
    [other] = parse(email("Message-ID: <r-2@redoxygen.net>\r\nDate: Fri, 20 Sep 2024 04:40:02 +0000\r\n"))
    [dated], [dated_later] = (parse(email(f"Date: Fri, 20 Sep 2024 04:4{m}:02 +0000\r\n")) for m in (0, 5))
    [bare] = parse(email(""))
    assert a.event_id == again.event_id  # the same email, by relay and by SMTP, or delivered twice
    assert other.event_id != a.event_id  # another email with the same words: another reply
    assert dated.event_id != dated_later.event_id != a.event_id
    assert a.reply_copy is not None and bare.reply_copy is not None
    assert a.reply_copy.match_key == bare.reply_copy.match_key
    assert a.reply_copy.distinct and not bare.reply_copy.distinct  # nothing of this reply alone: the window decides


def test_one_email_listing_the_same_words_twice_carries_two_replies():
    reply = "SmsId: 123\r\nDestTN: 61409000000\r\nReplyText: YES\r\n"
    raw = f"From: noreply@redoxygen.net\r\nMessage-ID: <r-3@redoxygen.net>\r\n\r\n{reply}{reply}".encode()
    first, second = parse(raw)
    assert first.text == second.text == "YES" and first.event_id != second.event_id
