"""OGANGI message notifications.

Document: ../shared/providers/ogangi-rest-api.txt. Its responses share an envelope
(`input`, `status`, `description`, `result`); `result` may hold `<messages>` of
`<message>` objects, "a generic object [that] may apply to other responses in other
methods": `id`, `carrier` (the field table says `carrierName`), `from`, `to`, `text`,
`status`, `statusDescription`, `encoding`, `date` (`yyyy-MM-dd'T'HH:mm:ss.SSSZZ`, such as
`2014-12-17T00:12:13.571-04:30`), `timezone` (`America/Caracas`) and `clientId`.

OGANGI publishes no callback contract, so a notification is that object, in XML or in
JSON with the same names: one message or many, with or without the envelope. The
document's XML has no root element; `rooted` gives it one.

Inbound messages (MO): the document says `from` is, for SMS, "the Short/Long code which
originated the message" and `getShortcodes` lists the instance's codes. A message sent
*to* one of our codes (OGANGI_SHORTCODES) is therefore one a phone sent us: a reply.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load

from webhooks.events import Event, Kind, Status

from . import Code, ParseContext, ParseError, reply_event

NAME = "ogangi"

# The document names one message status (SENT_TO_CARRIER) and points to a "Message's Status"
# page it does not include. The others are the names SMS platforms use (SMPP's DELIVRD,
# UNDELIV, ...) that say what they mean. Compared case-insensitively, with spaces and hyphens
# read as `_` ("Sent to Carrier"); anything else is `unknown`, the raw code kept.
STATUSES: dict[str, tuple[Status, bool]] = {
    "QUEUED": (Status.QUEUED, False),
    "ACCEPTED": (Status.QUEUED, False),  # taken by OGANGI, not yet handed on
    "ENROUTE": (Status.SENT, False),  # on its way through the carrier's network
    "SENT": (Status.SENT, False),
    "SENT_TO_CARRIER": (Status.SENT, False),  # "Sent to Carrier": the carrier may still fail it
    "DELIVERED": (Status.DELIVERED, True),
    "DELIVRD": (Status.DELIVERED, True),
    "FAILED": (Status.FAILED, True),
    "REJECTED": (Status.FAILED, True),
    "REJECTD": (Status.FAILED, True),
    "EXPIRED": (Status.FAILED, True),
    "UNDELIVERED": (Status.FAILED, True),
    "UNDELIV": (Status.FAILED, True),
}
# Statuses that say a phone sent the message to us: an inbound message (a reply), as one to OGANGI_SHORTCODES.
INBOUND_STATUSES = frozenset({"RECEIVED", "INBOUND", "MO"})
_NAME = re.compile(r"^\w{1,64}$")
EXAMPLE_DATE = "2014-12-17T00:12:13.571-04:30"
_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*\?>")


def status_code(text: str) -> str:
    """A status as the parser compares it, for OGANGI_STATUS_MAP: upper case, spaces and hyphens as `_`."""
    name = re.sub(r"[\s-]+", "_", text.strip()).upper()
    if not _NAME.match(name):
        raise ValueError("is not a status name OGANGI sends (letters, digits and _, such as DELIVRD)")
    return name


def _status_key(value: Any) -> str:
    return re.sub(r"[\s-]+", "_", str(value or "").strip()).upper()


def rooted(body: bytes) -> bytes:
    """An XML body wrapped in one root element (after its declaration); other bodies unchanged."""
    declaration = _DECLARATION.match(body)
    head = declaration.group(0) if declaration else b""
    rest = body[len(head) :]
    if not rest.lstrip().startswith(b"<") or rest.lstrip().startswith(b"<!"):
        return body  # not XML, or a DOCTYPE: left whole, so that defusedxml refuses it
    return head + b"<notification>" + rest + b"</notification>"


class OgangiDate(fields.Field):
    """`yyyy-MM-dd'T'HH:mm:ss.SSSZZ`; a date without an offset is read in the message's `timezone`."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> datetime:
        if not isinstance(value, str):
            raise ValidationError(f"must be a date string such as {EXAMPLE_DATE}, got {type(value).__name__}")
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValidationError(
                f"must be yyyy-MM-dd'T'HH:mm:ss.SSSZZ such as {EXAMPLE_DATE}, got {value!r}"
            ) from None
        if parsed.tzinfo is None:
            zone = (data or {}).get("timezone") if isinstance(data, Mapping) else None
            try:
                parsed = parsed.replace(tzinfo=ZoneInfo(str(zone)))
            except (ZoneInfoNotFoundError, ValueError):
                raise ValidationError(f"has no UTC offset and timezone {zone!r} is not a known zone") from None
        return parsed.astimezone(timezone.utc)


class MessageSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    id = Code(required=True)
    sender = Code(load_default=None, data_key="from")
    to = Code(load_default=None)
    text = fields.String(load_default=None)
    status = Code(load_default=None)
    status_description = fields.String(load_default=None, data_key="statusDescription")
    date = OgangiDate(load_default=None)

    @pre_load
    def _blank_is_missing(self, data: Any, **_: Any) -> Any:
        # XML writes an absent value as an empty element; a reply's text may really be empty.
        return {k: v for k, v in data.items() if v != "" or k == "text"} if isinstance(data, Mapping) else data


_MESSAGE = MessageSchema()


def find_messages(node: Any, path: str = "") -> list[tuple[str, Any]]:
    """The message objects in a notification, each with the path that names it in errors."""
    if isinstance(node, list):
        return [found for i, item in enumerate(node) for found in find_messages(item, f"{path}{i}.")]
    if not isinstance(node, Mapping):
        return [(path, node)]
    lowered = {str(k).lower(): k for k in node}
    for wrapper in ("result", "messages", "message"):  # the envelope, then the list, then the object
        if wrapper in lowered and "id" not in lowered:
            key = lowered[wrapper]
            return find_messages(node[key], f"{path}{key}.")
    if "id" not in lowered:
        nested = [k for k, v in node.items() if isinstance(v, (Mapping, list))]
        if len(nested) == 1:  # a root element of another name around the envelope
            return find_messages(node[nested[0]], f"{path}{nested[0]}.")
    return [(path, node)]


def _load(message: Any, path: str) -> dict[str, Any]:
    if not isinstance(message, Mapping):
        raise ParseError({path.rstrip(".") or "_body": [f"must be a message object, got {type(message).__name__}"]})
    try:
        return _MESSAGE.load(message)
    except ValidationError as err:
        raise ParseError(
            {f"{path}{k}": (v if isinstance(v, list) else [str(v)]) for k, v in err.messages_dict.items()}
        ) from None


def parse_notification(
    payload: Mapping[str, Any], ctx: ParseContext, shortcodes: frozenset[str] = frozenset()
) -> list[Event]:
    """One event per message: a reply when it was sent to one of our codes, a receipt otherwise."""
    events: list[Event] = []
    errors: dict[str, list[str]] = {}
    for path, message in find_messages(payload):
        try:
            fields_ = _load(message, path)
        except ParseError as err:
            errors.update(err.errors)
            fields_ = None
        if not isinstance(message, Mapping):
            continue
        # A message to one of our codes, or one whose status says it was received (unless the user's
        # OGANGI_STATUS_MAP names that status: the override wins, and makes it a receipt).
        key = _status_key(message.get("status"))
        inbound = str(message.get("to", "")).strip() in shortcodes or (
            key in INBOUND_STATUSES and key not in ctx.status_maps.get(NAME, {})
        )
        # A reply needs who sent it and what; a receipt needs its status. All are reported at once.
        needed = ("from", "text") if inbound else ("status",)
        errors.update(
            {
                f"{path}{name}": ["Missing data for required field."]
                for name in needed
                if message.get(name) is None or (name != "text" and message.get(name) == "")
            }
        )
        if fields_ is not None and not errors:
            events.append(_reply(fields_, message, ctx) if inbound else _receipt(fields_, message, ctx))
    if errors:
        raise ParseError(errors)
    if not events:
        raise ParseError({"message": ["no message in the notification"]})
    return events


def _receipt(f: dict[str, Any], raw: Mapping[str, Any], ctx: ParseContext) -> Event:
    key = _status_key(f["status"])
    status, final = ctx.status_for(NAME, key, STATUSES.get(key, (Status.UNKNOWN, False)))
    return Event(
        provider=NAME,
        kind=Kind.RECEIPT,
        status=status,
        final=final,
        message_id=f["id"],
        recipient=ctx.phone(f["to"]),
        provider_status=f["status"],
        description=f["status_description"],
        occurred_at=f["date"],
        received_at=ctx.received_at,
        raw=dict(raw),
    )


def _reply(f: dict[str, Any], raw: Mapping[str, Any], ctx: ParseContext) -> Event:
    sender = ctx.phone(f["sender"])
    # The object does not name the message answered, so an MO is known by its own id: the
    # fact of this reply alone. No time goes in: another route may write the date differently.
    return reply_event(
        ctx,
        NAME,
        f["id"],
        sender,
        f["text"],
        route="callback",
        facts=(f["id"],),
        recipient=f["to"],
        provider_status=f["status"],
        description=f["status_description"],
        occurred_at=f["date"],
        raw=dict(raw),
    )
