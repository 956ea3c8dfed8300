"""Provider emails written from the documents, as the raw bytes a mail server would hand over.

Where each shape comes from:
- Red Oxygen (../shared/providers/redoxygen-sendsms-json-api.txt): "If NULL or Callback Fails,
  Receipt will be forwarded to email" (and Reply). The email's layout is not published; the
  samples write the callback's own fields (the send response's SMSId/DestTn/Result/ResultText/
  Timestamp, the HTTP Reply Service's SmsId/DestTN/ReplyText/...) one per line or in an HTML
  table, with the documents' example values. The sender address is the Email API's domain.
- Digitaleo (../shared/providers/digitaleo-sms-api.txt, 2.10): subject "Response from 801 555
  xxxx to SMS #xxx"; the body "contains the text message that was sent along with its
  response"; HTML or TEXT format. The sent text and response come from its examples
  ("Text message to be sent", "Yes, this open day can interest me", SMS id 121905361).
"""

from __future__ import annotations

import base64
import quopri

from tests.conftest import SECRET

# The callback fields these samples carry, as tests/providers/test_redoxygen.py posts them.
RECEIPT_FIELDS = {
    "SMSId": "123",
    "DestTn": "+61111222333",
    "Result": "0000",
    "ResultText": "Delivered",
    "Timestamp": "2024-09-20T04:39:13.819Z",
}
REPLY_FIELDS = {
    "CustomerId": "12345",
    "EmailId": "81001201120271",
    "SmsId": "123",
    "UserEmail": "user@your_domain.com",
    "UserName": "RedOxygen Support",
    "DestTN": "61409000000",
    "DestName": "John",
    "ReplyURL": f"https://hooks.example.com/redoxygen/reply?token={SECRET}",
    "ReplyText": "Yes, see you at 10",
}


def _lines(fields: dict[str, str]) -> str:
    return "".join(f"{k}: {v}\r\n" for k, v in fields.items())


REDOXYGEN_RECEIPT = (
    "From: Red Oxygen <noreply@redoxygen.net>\r\n"
    "To: user@your_domain.com\r\n"
    "Subject: SMS delivery receipt\r\n"
    "Date: Fri, 20 Sep 2024 04:40:02 +0000\r\n"
    "Message-ID: <receipt-123@redoxygen.net>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=us-ascii\r\n"
    "\r\n" + _lines(RECEIPT_FIELDS)
).encode()


def redoxygen_reply_alternative(text: str = "Oui, à demain 10h — merci !") -> bytes:
    """A reply as multipart/alternative: text/plain quoted-printable UTF-8, and an HTML table in base64."""
    fields = {**REPLY_FIELDS, "ReplyText": text}
    plain = quopri.encodestring(_lines(fields).encode("utf-8")).decode("ascii")
    rows = "".join(f"<tr><td><b>{k}</b></td><td>{v.replace('&', '&amp;')}</td></tr>" for k, v in fields.items())
    html = (
        f"<!DOCTYPE html><html><head><style>td {{ padding: 2px }}</style></head><body>"
        f"<p>A reply to your SMS:</p><table>{rows}</table></body></html>"
    )
    html_b64 = base64.encodebytes(html.encode("utf-8")).decode("ascii")
    return (
        "From: Red Oxygen <noreply@redoxygen.net>\r\n"
        "To: user@your_domain.com\r\n"
        "Subject: =?utf-8?q?SMS_reply_from_John?=\r\n"
        "Message-ID: <reply-123@redoxygen.net>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/alternative; boundary="b1"\r\n'
        "\r\n"
        "--b1\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "\r\n"
        f"{plain}\r\n"
        "--b1\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        "\r\n"
        f"{html_b64}\r\n"
        "--b1--\r\n"
    ).encode("ascii")


def redoxygen_reply_html_only(text: str, charset: str) -> bytes:
    """A reply with only an HTML body (a table of the fields), 8-bit in `charset`."""
    rows = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in {**REPLY_FIELDS, "ReplyText": text}.items())
    head = (
        "From: noreply@redoxygen.net\r\nTo: user@your_domain.com\r\nSubject: SMS reply\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: text/html; charset={charset}\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    return head.encode("ascii") + f"<html><body><table>{rows}</table></body></html>".encode(charset)


def digitaleo_response(
    body: str,
    charset: str | None = "utf-8",
    encoding: str = "8bit",
    subtype: str = "plain",
    subject: str = "Response from 801 555 0123 to SMS #121905361",
) -> bytes:
    """A Digitaleo response email: its documented subject, a TEXT or HTML body in `charset`."""
    try:
        data = body.encode(charset or "utf-8")
    except LookupError:  # a charset Python does not know: the bytes are UTF-8
        data = body.encode("utf-8")
    if encoding == "base64":
        payload = base64.encodebytes(data)
    elif encoding == "quoted-printable":
        payload = quopri.encodestring(data)
    else:
        payload = data
    content_type = f"text/{subtype}" + (f"; charset={charset}" if charset else "")
    head = (
        f"From: Digitaleo <noreply@digitaleo.com>\r\nTo: replies@your_domain.com\r\nSubject: {subject}\r\n"
        f"Date: Mon, 25 Sep 2017 17:41:30 +0200\r\nMessage-ID: <rep-121905361@digitaleo.com>\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: {content_type}\r\nContent-Transfer-Encoding: {encoding}\r\n\r\n"
    )
    return head.encode("ascii") + payload


DIGITALEO_TEXT = "Your SMS: Text message to be sent\r\nResponse: Yes, this open day can interest me\r\n"

UNKNOWN = (
    "From: Someone <someone@example.org>\r\n"
    "To: replies@your_domain.com\r\n"
    "Subject: Out of office\r\n"
    "Message-ID: <ooo-1@example.org>\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    f"I am away until Monday. (my hook: https://hooks.example.com/x?token={SECRET})\r\n"
).encode()
