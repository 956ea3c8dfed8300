"""Provider shapes beyond the common callback: OGANGI's inbound statuses, Digitaleo's ping, the email endpoints."""

from __future__ import annotations

from typing import Any

from .shapes import CALLBACK_ERRORS, NON_BLANK, RETRY_AFTER, answer, any_case, ref

# OGANGI statuses that say a phone sent the message (ogangi.INBOUND_STATUSES), as status_code() compares them.
INBOUND = {
    "type": "string",
    "pattern": "^\\s*([Rr][Ee][Cc][Ee][Ii][Vv][Ee][Dd]|[Ii][Nn][Bb][Oo][Uu][Nn][Dd]|[Mm][Oo])\\s*$",
}


def ping(item: dict[str, Any]) -> dict[str, Any]:
    """A ping stores no event: its 200 says which SMS was recorded and whether a sync was scheduled."""
    ok = answer(
        {
            "type": "object",
            "required": ["accepted", "sms_id", "sync_scheduled"],
            "properties": {
                "accepted": {"type": "integer"},
                "sms_id": {"type": "string"},
                "sync_scheduled": {"type": "boolean"},
            },
        },
        "The ping is in Redis; the worker will ask the API",
    )
    return {
        method: {**operation, "responses": {**operation["responses"], "200": ok}} for method, operation in item.items()
    }


# What webhooks/email/text.py's looks_like_email wants: a From, To, Subject, Date, Message-ID or
# Content-Type header among the header lines that open the message (before the first blank line).
EMAIL_HEADER = (
    "(" + "|".join(any_case(h) for h in ("From", "To", "Subject", "Date", "Message-ID", "Content-Type")) + ")"
)
EMAIL = {
    "type": "string",
    "pattern": "^([!-9;-~]+:[^\\r\\n]*\\r?\\n([ \\t][^\\r\\n]*\\r?\\n)*)*" + EMAIL_HEADER + ":",
    "description": "an RFC 822 message: header lines, among them From, To, Subject, Date, Message-ID or "
    "Content-Type, then a blank line and the body",
}
BLANK = {"type": "string", "pattern": "^[\\t\\n\\v\\f\\r ]*$"}


def relay_form() -> dict[str, Any]:
    """A relay's form: the raw message in `body-mime` (else `email`), or Mailgun's parsed fields."""
    parsed = ("body-plain", "stripped-text", "body-html")
    headers = ("subject", "from", "sender", "recipient", "message-headers")
    return {
        "type": "object",
        "properties": {name: {"type": "string"} for name in ("body-mime", "email", *parsed, *headers)},
        "anyOf": [
            {"required": ["body-mime"], "properties": {"body-mime": EMAIL}},
            {"required": ["email"], "properties": {"body-mime": BLANK, "email": EMAIL}},
            {
                "properties": {"body-mime": BLANK, "email": BLANK},
                "anyOf": [
                    {"required": [name], "properties": {name: {"type": "string", "pattern": NON_BLANK}}}
                    for name in parsed
                ],
            },
        ],
    }


def email_upload(summary: str) -> dict[str, Any]:
    relay = relay_form()
    errors = {
        **CALLBACK_ERRORS,
        "413": "The email is over INBOUND_EMAIL_MAX_BYTES",
        "400": "An empty body, a form without the fields above, or bytes with no email header",
    }
    responses = {
        "200": answer(
            ref("Accepted"),
            "The email's events are in Redis (an email that cannot be read is stored as one `unknown` event)",
        )
    }
    for status, reason in errors.items():
        responses[status] = answer(ref("Error"), reason, headers=RETRY_AFTER if status in ("429", "503") else None)
    raw = {"schema": EMAIL}
    return {
        "post": {
            "summary": summary,
            "security": [{"token": []}, {"basic": []}],
            "responses": responses,
            "requestBody": {
                "required": True,
                "content": {
                    "message/rfc822": raw,
                    "text/plain": raw,
                    "application/octet-stream": raw,
                    "application/x-www-form-urlencoded": {"schema": relay},
                    "multipart/form-data": {"schema": relay},
                },
            },
        }
    }
