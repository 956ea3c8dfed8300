"""POST /inbound/email: raw messages and relay forms, the shared auth/size/bad-input cases, one id per fact."""

from __future__ import annotations

import io
import json
import uuid
from urllib.parse import quote_from_bytes

import pytest

from tests.conftest import SECRET
from tests.email_samples import DIGITALEO_TEXT, RECEIPT_FIELDS, REDOXYGEN_RECEIPT, UNKNOWN, digitaleo_response
from tests.webhook_cases import JSON, WebhookCases
from webhooks import create_app

TOKEN = f"?token={SECRET}"


def queued(redis) -> list[dict]:
    return [json.loads(item) for item in redis.lrange("smshooks:inbox", 0, -1)]


def multipart(fields: dict[str, bytes]) -> tuple[bytes, str]:
    """A multipart/form-data body built by hand, so 8-bit field bytes go out exactly as given."""
    boundary = uuid.uuid4().hex
    body = (
        b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value + b"\r\n"
            for name, value in fields.items()
        )
        + f"--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


class TestInboundEmailEndpoint(WebhookCases):
    """The shared cases; those about JSON/XML bodies and the 64 KiB limit are restated for emails below."""

    url = "/inbound/email"

    def valid_body(self):
        return {"data": REDOXYGEN_RECEIPT, "content_type": "message/rfc822"}

    def test_body_over_64k_is_413(self, client, redis):
        # Emails get INBOUND_EMAIL_MAX_BYTES (1 MiB), not the callbacks' 64 KiB: a 70 KB email is taken.
        response = self.post(client, data=REDOXYGEN_RECEIPT + b"\r\n" + b"x" * 70_000, content_type="message/rfc822")
        assert response.status_code == 200, response.data
        over = self.post(client, data=REDOXYGEN_RECEIPT + b"x" * (1024 * 1024), content_type="message/rfc822")
        self.assert_json_error(over, 413)
        assert len(queued(redis)) == 1

    def test_chunked_body_over_64k_is_413_not_truncated(self, env, redis):
        small = create_app({**env, "INBOUND_EMAIL_MAX_BYTES": "2000"}).test_client()
        response = small.post(
            self.url + TOKEN,
            headers=JSON,
            input_stream=io.BytesIO(REDOXYGEN_RECEIPT + b"x" * 3000),
            content_type="message/rfc822",
            environ_overrides={"wsgi.input_terminated": True, "CONTENT_LENGTH": ""},
        )
        body = self.assert_json_error(response, 413)
        assert "2000" in body["error"]
        assert redis.llen("smshooks:inbox") == 0

    @pytest.mark.parametrize("content_type", ["application/json", "application/xml"])
    def test_garbage_json_is_400(self, client, content_type):
        # An email is never JSON or XML: those bodies are refused by type, whatever they hold.
        self.assert_json_error(self.post(client, data=b"{not json", content_type=content_type), 415)

    def test_deep_json_is_400(self, client):
        self.assert_json_error(self.post(client, data=b"[" * 10_000, content_type="application/json"), 415)

    def test_huge_number_is_400(self, client):
        self.assert_json_error(self.post(client, data=b"9" * 5000, content_type="application/json"), 415)

    def test_invalid_utf8_is_400(self, client):
        # Bytes that are no email at all (no header) are a 400 naming what is missing.
        body = self.assert_json_error(self.post(client, data=b"\xff\xfe not an email", content_type="text/plain"), 400)
        assert "not an RFC 822 email" in body["fields"]["_body"][0]

    def test_xml_entities_are_refused(self, client):
        self.assert_json_error(
            self.post(client, data=b"<!DOCTYPE r [<!ENTITY a 'a'>]><r>&a;</r>", content_type="application/xml"), 415
        )

    def test_unknown_charset_is_400_naming_it(self, client, redis):
        # The HTTP charset means nothing for a raw email: each MIME part declares its own.
        response = self.post(client, data=REDOXYGEN_RECEIPT, content_type="message/rfc822; charset=nope-42")
        assert response.status_code == 200, response.data


@pytest.mark.parametrize("content_type", ["message/rfc822", "text/plain", "application/octet-stream", ""])
def test_raw_message_types(client, redis, content_type):
    response = client.post(f"/inbound/email{TOKEN}", data=REDOXYGEN_RECEIPT, content_type=content_type)
    assert response.status_code == 200, response.data
    [event] = queued(redis)
    assert (event["provider"], event["message_id"], event["status"]) == ("redoxygen", "123", "delivered")


@pytest.mark.parametrize("field,path", [("body-mime", "/inbound/email/mime"), ("email", "/inbound/email")])
def test_relay_raw_mime_fields_keep_8bit_bytes(client, redis, field, path):
    raw = digitaleo_response("Réponse : Oui, ça m'intéresse\r\n", charset="iso-8859-1")  # 8-bit Latin-1
    body, content_type = multipart({"recipient": b"replies@your_domain.com", field: raw, "token": b"mailgun-own"})
    response = client.post(path + TOKEN, data=body, content_type=content_type)
    assert response.status_code == 200, response.data
    assert queued(redis)[0]["text"] == "Oui, ça m'intéresse"


def test_relay_urlencoded_raw_mime(client, redis):
    raw = digitaleo_response("Réponse : Oui, ça m'intéresse\r\n", charset="iso-8859-1")
    body = b"sender=noreply%40digitaleo.com&body-mime=" + quote_from_bytes(raw).encode()
    response = client.post(f"/inbound/email{TOKEN}", data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200, response.data
    assert queued(redis)[0]["text"] == "Oui, ça m'intéresse"


def test_mailgun_parsed_fields(client, redis):
    headers = json.dumps([["Message-Id", "<rep-1@digitaleo.com>"], ["Date", "Mon, 25 Sep 2017 17:41:30 +0200"]])
    form = {
        "sender": "noreply@digitaleo.com",
        "subject": "Response from 801 555 0123 to SMS #121905361",
        "body-plain": DIGITALEO_TEXT,
        "stripped-text": "Yes",
        "message-headers": headers,
        "recipient": "replies@your_domain.com",
    }
    response = client.post(f"/inbound/email{TOKEN}", data=form)
    assert response.status_code == 200, response.data
    [event] = queued(redis)
    assert (event["provider"], event["message_id"], event["text"]) == (
        "digitaleo",
        "121905361",
        "Yes, this open day can interest me",
    )
    assert event["occurred_at"] == "2017-09-25T15:41:30+00:00"


@pytest.mark.parametrize(
    "send,fields",
    [
        pytest.param(
            lambda c: c.post(f"/inbound/email{TOKEN}", data={"subject": "x", "from": "a@b"}, headers=JSON),
            "body-mime",
            id="form-without-email",
        ),
        pytest.param(
            lambda c: c.post(f"/inbound/email{TOKEN}", data=b"", content_type="message/rfc822", headers=JSON),
            "empty",
            id="empty",
        ),
        pytest.param(
            lambda c: c.post(f"/inbound/email{TOKEN}", data=b"just some words", headers=JSON), "RFC 822", id="no-header"
        ),
    ],
)
def test_bad_bodies_are_400_naming_what_is_missing(client, redis, send, fields):
    response = send(client)
    assert response.status_code == 400, response.data
    assert fields in response.get_json()["fields"]["_body"][0]
    assert redis.llen("smshooks:inbox") == 0


def test_unknown_email_is_accepted_and_kept(client, redis):
    response = client.post(f"/inbound/email{TOKEN}", data=UNKNOWN, content_type="message/rfc822")
    assert response.status_code == 200 and response.get_json()["accepted"] == 1
    [event] = queued(redis)
    assert (event["kind"], event["status"], event["provider"]) == ("unknown", "unknown", "email")
    assert SECRET not in json.dumps(event)


def test_receipt_by_email_and_by_callback_is_stored_once(client, redis):
    by_email = client.post(f"/inbound/email{TOKEN}", data=REDOXYGEN_RECEIPT, content_type="message/rfc822").get_json()
    by_callback = client.post(
        f"/redoxygen/receipt{TOKEN}", json={"Messages": {"Count": 1, "1": RECEIPT_FIELDS}}, headers=JSON
    ).get_json()
    assert by_callback["event_ids"] == by_email["event_ids"]
    assert (by_callback["accepted"], by_callback["duplicates"]) == (0, 1)
    assert len(queued(redis)) == 1


def test_deeply_nested_mime_is_kept_not_a_500(client, redis):
    nesting = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i) for i in range(3000))
    raw = b"From: a@b\r\nSubject: deep\r\n" + nesting + b"Content-Type: text/plain\r\n\r\nhi\r\n"
    response = client.post(f"/inbound/email{TOKEN}", data=raw, content_type="message/rfc822")
    assert response.status_code == 200, response.data
    assert queued(redis)[0]["kind"] == "unknown"


def test_unknown_email_is_a_database_event_but_no_message(client, env):
    from tests.conftest import run_worker
    from tests.processes import rows

    assert client.post(f"/inbound/email{TOKEN}", data=UNKNOWN, content_type="message/rfc822").status_code == 200
    run_worker(env)
    [(kind, status, provider)] = rows(env["DATABASE_URL"], "SELECT kind, status, provider FROM sms_events")
    assert (kind, status, provider) == ("unknown", "unknown", "email")
    assert rows(env["DATABASE_URL"], "SELECT * FROM sms_messages") == []


@pytest.mark.parametrize("header", ['To: "\r\n\r\nhello', "From: <\r\n\r\nx", "Date: 99 Foo\r\n\r\nx"])
def test_malformed_headers_are_not_a_500(client, redis, header):
    response = client.post(f"/inbound/email{TOKEN}", data=header.encode(), content_type="message/rfc822")
    assert response.status_code in (200, 400), response.data
    assert response.get_json()
