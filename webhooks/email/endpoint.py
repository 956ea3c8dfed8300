"""`POST /inbound/email`: a provider's email, raw or as an inbound-mail relay posts it, stored as events.

The flow and error mapping are web/endpoint.py's handle_callback (401, 413, 415, 400, 503 +
Retry-After, 200 once in Redis), with a larger size limit (INBOUND_EMAIL_MAX_BYTES,
1 MiB by default) because emails carry headers, HTML and quoted text.

Accepted bodies:
- the raw RFC 822 message, as `message/rfc822`, `text/plain`, `application/octet-stream`
  or with no Content-Type;
- a form (`multipart/form-data` or `application/x-www-form-urlencoded`) with the raw message
  in `body-mime` (Mailgun, route URL ending in `mime`) or `email` (SendGrid Inbound Parse with
  "POST the raw, full MIME message");
- Mailgun's parsed form: `body-plain` (or `stripped-text`, or `body-html`), with `subject`,
  `from` (or `sender`), `recipient` and `message-headers` (for Message-Id and Date) when present.
"""

from __future__ import annotations

import email
import email.policy
import json
from email.message import EmailMessage, Message
from urllib.parse import parse_qsl

from flask import Response, current_app, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from webhooks.events import utcnow
from webhooks.providers import ParseContext
from webhooks.telemetry.redaction import scrub
from webhooks.web.endpoint import Responder, configured_secrets, store_and_answer
from webhooks.web.payload import BadPayload, read_body

from .parse import parse_email
from .text import looks_like_email, read_headers

RAW_FIELDS = ("body-mime", "email")  # Mailgun's raw-MIME route; SendGrid's raw option
PARSED_BODY_FIELDS = ("body-plain", "stripped-text", "body-html")  # Mailgun's parsed route
_RAW_TYPES = frozenset({"message/rfc822", "text/plain", "application/octet-stream", ""})
_FORM_TYPES = frozenset({"multipart/form-data", "application/x-www-form-urlencoded"})


def handle_inbound_email(responder: Responder | None = None) -> Response:
    """Verify, read the message, parse it (never refused for its content), store, answer."""
    responder = responder or Responder()
    settings = current_app.config["SETTINGS"]
    if (refused := responder.refuse(settings)) is not None:
        return refused

    limit = settings.inbound_email_max_bytes
    request.max_content_length = limit  # this route only; the app's 64 KiB stays for callbacks
    try:
        body = g.smshooks_body = read_body(request, limit)  # kept for the refused log
        raw = message_bytes(body)
    except RequestEntityTooLarge:
        return responder.error(413, f"the email is over {limit} bytes (INBOUND_EMAIL_MAX_BYTES)")
    except BadPayload as err:
        return responder.error(err.status, "the body is not an email", scrub(err.errors, configured_secrets()))

    ctx = ParseContext(
        received_at=utcnow(), phone_region=settings.phone_region, status_maps=current_app.config["STATUS_MAPS"]
    )
    events = parse_email(raw, ctx, configured_secrets())
    return store_and_answer(events, responder, "email")


def message_bytes(body: bytes) -> bytes:
    """The raw RFC 822 message in the request body, by its Content-Type; BadPayload names what is wrong."""
    mimetype = request.mimetype
    if mimetype in _FORM_TYPES:
        fields = _form_fields(body, mimetype)
        raw = next((fields[name] for name in RAW_FIELDS if fields.get(name, b"").strip()), None)
        if raw is None:
            raw = _from_parsed_fields(fields)
        if raw is None:
            raise BadPayload(
                {
                    "_body": [
                        f"the form has no email: expected the raw message in one of {list(RAW_FIELDS)} or Mailgun's "
                        f"parsed {list(PARSED_BODY_FIELDS)}; got fields {sorted(fields)}"
                    ]
                }
            )
    elif mimetype in _RAW_TYPES:
        raw = body
    else:
        raise BadPayload(
            {"_body": [f"cannot read a {mimetype}: send the raw email as message/rfc822 or a relay's form"]}, status=415
        )
    if not raw.strip():
        raise BadPayload({"_body": ["the email is empty"]})
    if not looks_like_email(read_headers(raw)):
        raise BadPayload(
            {
                "_body": [
                    "not an RFC 822 email: no From, To, Subject, Date, Message-ID or Content-Type "
                    "header before the first blank line"
                ]
            }
        )
    return raw


def _form_fields(body: bytes, mimetype: str) -> dict[str, bytes]:
    """Form fields as bytes, exactly as sent: a raw message's 8-bit body must not be re-decoded.

    Werkzeug would decode every field as UTF-8 (replacing what is not), so multipart is
    read with the email package, which keeps each part's bytes.
    """
    fields: dict[str, bytes] = {}
    if mimetype == "application/x-www-form-urlencoded":
        # Latin-1 maps bytes to characters one to one, so encoding back gives the bytes sent.
        for name, value in parse_qsl(body.decode("latin-1"), keep_blank_values=True, encoding="latin-1"):
            fields.setdefault(name, value.encode("latin-1"))
        return fields
    head = f"Content-Type: {request.headers.get('Content-Type', '')}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    form = email.message_from_bytes(head + body, policy=email.policy.compat32)
    if not form.is_multipart():
        raise BadPayload({"_body": ["multipart/form-data without a boundary or parts"]})
    for part in form.get_payload():
        assert isinstance(part, Message), "a multipart message's payload is a list of parts"
        part_name = part.get_param("name", header="content-disposition")
        part_value = part.get_payload(decode=True)
        if isinstance(part_name, str) and isinstance(part_value, bytes):
            fields.setdefault(part_name, part_value)
    return fields


def _from_parsed_fields(fields: dict[str, bytes]) -> bytes | None:
    """A message rebuilt from Mailgun's parsed fields, so that it takes the same path as a raw one."""

    def text(name: str) -> str:
        return fields.get(name, b"").decode("utf-8", errors="replace")

    body = next(((name, text(name)) for name in PARSED_BODY_FIELDS if text(name).strip()), None)
    if body is None:
        return None
    message = EmailMessage()
    headers = {"From": text("from") or text("sender"), "To": text("recipient"), "Subject": text("subject")}
    try:  # Mailgun's message-headers: a JSON list of [name, value] pairs
        pairs = json.loads(text("message-headers") or "[]")
        original = {str(p[0]).lower(): str(p[1]) for p in pairs if isinstance(p, list) and len(p) == 2}
    except (ValueError, TypeError):
        original = {}
    headers.update({"Message-ID": original.get("message-id", ""), "Date": original.get("date", "")})
    for name, value in headers.items():
        if value.strip():
            try:
                message[name] = " ".join(value.split())  # one line: a header cannot carry a newline
            except (ValueError, TypeError):
                continue  # a Date or address the policy refuses: the body is what matters
    name, content = body
    message.set_content(content, subtype="html" if name == "body-html" else "plain")
    return message.as_bytes()
