"""Digitaleo (ecoSMS / Texteo): the API's status records turned into events.

Document: ../shared/providers/digitaleo-sms-api.txt. Digitaleo calls the registered
address with only the SMS id, `ping?sms_id=xxxx`, whenever a message's status changes
or a reply arrives (2.11); what happened is read from the API (`sync`); `ping` reads the ping itself.

A status record, from `GET /status?action=queue` (3.11.3) or `GET /smsstatus` (3.12),
in the list shape `{"size": .., "total": .., "list": [...]}` (1.3):

    {"smsId": "121905361", "status": "rep", "recipient": "+33601010101",
     "mailingId": "10002398", "date": "2017-09-25 17:41:26",
     "description": "SMS répondu", "response": "Yes, this open day can interest me"}

`date` is the account's local time without a zone. The technical code ("N5",
"N4:204") the document mentions has no published field name: the whole record is kept
in `raw`, and the short code is `provider_status`. A `rep` status is a reply too (2.10).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone, tzinfo
from typing import Any

from webhooks.events import Event, Kind, Status
from webhooks.providers import ParseContext, ParseError, is_number, reply_event

NAME = "digitaleo"

# 2.8: the API's short codes.
STATUSES = {
    "wait": Status.SCHEDULED,
    "on": Status.SENT,
    "ok": Status.DELIVERED,
    "ko": Status.FAILED,
    "rep": Status.REPLIED,
    "no": Status.UNKNOWN,
}
FINAL_CODES = frozenset({"ok", "ko", "rep"})  # final (2.8), though a `rep` may follow `ok`: a ping says so


def status_code(text: str) -> str:
    """A short code as the parser compares it, for DIGITALEO_STATUS_MAP: lower case."""
    code = text.strip().lower()
    if not code or len(code) > 64 or any(c.isspace() for c in code):
        raise ValueError("is not a status code Digitaleo sends (a short code such as 'ok' or 'ko')")
    return code


def as_sms_id(value: Any) -> str | None:
    """The id as digits, or None: the API numbers messages, and the ping passes that number."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    text = str(value).strip()
    return text if is_number(text) and len(text) <= 20 else None


def records(listing: Any) -> list[Any]:
    """The resources of a list answer (1.3), or ParseError when the answer has no list."""
    if not isinstance(listing, Mapping) or not isinstance(listing.get("list", []), list):
        raise ParseError({"list": [f"expected {{'size', 'total', 'list': [...]}}, got {type(listing).__name__}"]})
    return listing.get("list") or []


def local_time(value: Any, zone: tzinfo) -> datetime | None:
    """`2017-09-25 17:41:26` in the account's zone, as UTC; None when absent or unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(timezone.utc)


def parse_record(record: Any, ctx: ParseContext, zone: tzinfo) -> list[Event]:
    """One status event, plus a reply event for a `rep` carrying a response; ParseError when unusable."""
    if not isinstance(record, Mapping):
        raise ParseError({"_record": [f"must be an object, got {type(record).__name__}"]})
    sms_id = as_sms_id(record.get("smsId"))
    code = record.get("status")
    errors = {}
    if sms_id is None:
        errors["smsId"] = [f"must be the numeric SMS id, got {record.get('smsId')!r}"]
    if not isinstance(code, str) or not code.strip():
        errors["status"] = [f"must be a status code such as 'ok', got {code!r}"]
    if sms_id is None or not isinstance(code, str) or not code.strip():
        raise ParseError(errors)
    code = code.strip().lower()
    occurred_at = local_time(record.get("date"), zone)
    phone = ctx.phone(record.get("recipient") if isinstance(record.get("recipient"), str) else None)
    description = record.get("description") if isinstance(record.get("description"), str) else None
    status, final = ctx.status_for(NAME, code, (STATUSES.get(code, Status.UNKNOWN), code in FINAL_CODES))
    events = [
        Event(
            provider=NAME,
            kind=Kind.RECEIPT,
            status=status,
            final=final,
            message_id=sms_id,
            recipient=phone,
            provider_status=code,
            description=description,
            occurred_at=occurred_at,
            received_at=ctx.received_at,
            raw=dict(record),
        )
    ]
    response = record.get("response")
    if code == "rep" and isinstance(response, str) and response.strip():
        # Every look-up re-reads the message's whole history: the record's own date, as written,
        # keeps the id stable across look-ups. Without a date the id is the words alone, still
        # remembered for DEDUPE_WINDOW (distinct), or the next look-up would store it again.
        date = record.get("date")
        events.append(
            reply_event(
                ctx,
                NAME,
                sms_id,
                phone,
                response,
                route="api",
                facts=(date.strip() if isinstance(date, str) else None,),
                distinct=True,
                occurred_at=occurred_at,
                raw=dict(record),
            )
        )
    return events


def parse_records(items: list[Any], ctx: ParseContext, zone: tzinfo) -> tuple[list[Event], list[tuple[Any, str]]]:
    """Events of every usable record, and each unusable record with the reason.

    Never raises for one bad record: the status queue forgets what it hands out, so one
    bad record must not cost the others.
    """
    events: list[Event] = []
    bad: list[tuple[Any, str]] = []
    for record in items:
        try:
            events.extend(parse_record(record, ctx, zone))
        except ParseError as err:
            bad.append((record, str(err)))
    return events, bad
