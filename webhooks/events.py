"""The one event vocabulary every provider is translated into.

A provider module turns a callback into `Event`s; the web side stores their wire
form (`EventSchema().dump`) in Redis; workers load it back and hand it to handlers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from enum import Enum
from typing import Any

import orjson
from marshmallow import RAISE, Schema, fields, post_load, validate


class Kind(str, Enum):
    RECEIPT = "receipt"  # the provider tells us what happened to a message we sent
    REPLY = "reply"  # a phone answered one of our messages
    UNKNOWN = "unknown"  # something a provider sent that we could not read (an unrecognised email); `raw` keeps it
    RECEIPT_OVERDUE = "receipt_overdue"  # smshooks' own: no final status by the deadline (pipeline/watchdog.py)


class Status(str, Enum):
    SCHEDULED = "scheduled"  # accepted, to be sent later
    QUEUED = "queued"  # waiting at the provider
    SENT = "sent"  # handed to the carrier
    DELIVERED = "delivered"  # the handset has it
    FAILED = "failed"  # it will never arrive
    REPLIED = "replied"  # the recipient answered
    UNKNOWN = "unknown"  # a code we cannot map; `provider_status` keeps it
    RECEIVED = "received"  # the status of every reply event


# How far along a message is; `sms_messages` never moves to a lower rank, so a
# late "sent" cannot overwrite "delivered". Unknown ranks lowest: it never hides
# a status we understood.
STATUS_RANK = {
    Status.UNKNOWN: 0,
    Status.SCHEDULED: 1,
    Status.QUEUED: 2,
    Status.SENT: 3,
    Status.DELIVERED: 4,
    Status.FAILED: 4,
    Status.REPLIED: 5,
    Status.RECEIVED: 5,
}
FINAL_STATUSES = frozenset({Status.DELIVERED, Status.FAILED, Status.REPLIED, Status.RECEIVED})


@dataclasses.dataclass(frozen=True)
class Event:
    """One thing a provider told us, in our words."""

    provider: str  # module name of the provider: "redoxygen", "digitaleo", ...
    kind: Kind
    status: Status
    message_id: str  # the provider's id of the outbound SMS (for replies: the one answered)
    received_at: datetime  # when smshooks received the callback (UTC)
    occurred_at: datetime | None = None  # the provider's time; `received_at` when it gave none
    final: bool = False  # no later status is expected for this message
    recipient: str | None = None  # the phone the SMS went to (E.164 when it could be normalised)
    sender: str | None = None  # for replies: the phone that answered
    text: str | None = None  # for replies: what the phone said
    provider_status: str | None = None  # the raw code, as the provider sent it
    description: str | None = None  # the provider's words for the status
    raw: dict[str, Any] = dataclasses.field(default_factory=dict)  # original fields, secret removed
    event_id: str = ""  # derived from the facts above; see `event_id_for`
    # How a reply reached us, for `Ingest.store` to match its copies by other routes. Not on the
    # wire (EventSchema leaves it out): only the process that parsed the reply needs it.
    reply_copy: ReplyCopy | None = dataclasses.field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        # The id is taken before `occurred_at` defaults to `received_at`, so that
        # only the provider's own time goes into it.
        if not self.event_id:
            object.__setattr__(self, "event_id", event_id_for(self))
        if self.occurred_at is None:
            object.__setattr__(self, "occurred_at", self.received_at)


def event_id_for(event: Event, *extra: str) -> str:
    """A deterministic id: the same fact, delivered twice or by two routes, gets the same id.

    Only provider facts go in, never `received_at`: a re-delivered callback hashes the same.
    `extra` takes a provider's own identifiers of the fact, where it has some.
    """
    # An event built without a provider time has `occurred_at` defaulted to `received_at`
    # (__post_init__), so a caller adding `extra` after construction must not hash it.
    occurred = event.occurred_at
    provider_time = (
        occurred.astimezone(timezone.utc).isoformat() if occurred is not None and occurred != event.received_at else ""
    )
    facts = [
        event.provider,
        event.kind.value,
        event.message_id,
        event.provider_status or "",
        event.status.value,
        event.sender or "",
        event.text or "",
        provider_time,
        *extra,
    ]
    digest = hashlib.sha256(json.dumps(facts, ensure_ascii=False).encode()).hexdigest()
    return f"{event.provider}-{digest[:32]}"


@dataclasses.dataclass(frozen=True)
class ReplyCopy:
    """One copy of a reply as a route brought it: what `Ingest.store` matches it with other routes' copies by."""

    match_key: str  # `reply_match_key`: the same for the reply's copy on every route
    route: str  # "callback", "email", "api": copies on two routes may be one reply, two on one route are two
    # True when the event id holds a fact of this reply alone (EmailId, Message-ID, a record's date):
    # remembered for DEDUPE_WINDOW. False: the id holds only the words, so it is remembered for
    # REPLY_MATCH_WINDOW, and the same words later are a new reply.
    distinct: bool


def _folded(text: str | None) -> str:
    return " ".join((text or "").split())  # email bodies wrap and pad


def reply_match_key(provider: str, message_id: str, sender: str | None, text: str | None) -> str:
    """What every route's copy of one reply agrees on: the SMS answered, the phone, the text (whitespace folded).

    Two replies with the same words share it too; `Ingest.store` tells them apart by counting
    each route's distinct ids (docs/providers.md, "When two replies are one").
    """
    facts = [provider, Kind.REPLY.value, message_id, sender or "", _folded(text)]
    digest = hashlib.sha256(json.dumps(facts, ensure_ascii=False).encode()).hexdigest()
    return f"{provider}-{digest[:32]}"


def reply_event_id(
    provider: str, message_id: str, sender: str | None, text: str | None, route: str, facts: Sequence[str]
) -> str:
    """The id of one copy of a reply: its match key's facts, the route, and the route's own facts of this reply.

    `facts` are what the route gives per reply (Red Oxygen's EmailId, an email's Message-ID,
    Digitaleo's record date), never when we received it: a redelivered copy hashes the same,
    and a second reply with the same words, carrying other facts, does not.
    """
    parts = [provider, Kind.REPLY.value, message_id, sender or "", _folded(text), route, *facts]
    digest = hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()
    return f"{provider}-{digest[:32]}"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class _UTCDateTime(fields.AwareDateTime):
    """ISO 8601, always UTC on the wire."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="iso", default_timezone=timezone.utc, **kwargs)

    def _serialize(self, value: datetime | None, attr: Any, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else value.astimezone(timezone.utc).isoformat()


class EventSchema(Schema):
    """The wire form of an `Event`: what Redis, RQ jobs and handlers' JSON see."""

    class Meta:
        unknown = RAISE  # our own format: an unexpected field is a bug, not a provider quirk
        ordered = True

    event_id = fields.String(required=True)
    provider = fields.String(required=True)
    kind = fields.Enum(Kind, by_value=True, required=True)
    status = fields.Enum(Status, by_value=True, required=True)
    final = fields.Boolean(required=True)
    message_id = fields.String(required=True, validate=validate.Length(min=1))
    recipient = fields.String(allow_none=True, load_default=None)
    sender = fields.String(allow_none=True, load_default=None)
    text = fields.String(allow_none=True, load_default=None)
    provider_status = fields.String(allow_none=True, load_default=None)
    description = fields.String(allow_none=True, load_default=None)
    occurred_at = _UTCDateTime(required=True)
    received_at = _UTCDateTime(required=True)
    raw = fields.Dict(keys=fields.String(), load_default=dict)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> Event:
        return Event(**data)


EVENT_SCHEMA = EventSchema()


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(timezone.utc).isoformat()


def wire(event: Event) -> dict[str, Any]:
    """`EVENT_SCHEMA.dump(event)` without marshmallow's field walk, for the web side's one write per callback.

    The parsers have already given every field its type, so the schema's dump would only copy
    them; a property test in tests/test_events.py holds the two equal for any event.
    """
    return {
        "event_id": event.event_id,
        "provider": event.provider,
        "kind": event.kind.value,
        "status": event.status.value,
        "final": event.final,
        "message_id": event.message_id,
        "recipient": event.recipient,
        "sender": event.sender,
        "text": event.text,
        "provider_status": event.provider_status,
        "description": event.description,
        "occurred_at": _iso(event.occurred_at),
        "received_at": _iso(event.received_at),
        "raw": event.raw,
    }


def wire_json(event: Event) -> bytes:
    """The event's wire form as JSON (orjson: a few microseconds less than json.dumps per event)."""
    form = wire(event)
    try:
        return orjson.dumps(form, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # an integer over 64 bits in `raw`, a lone surrogate: the standard library takes them
        return json.dumps(form).encode()


def dump_events(events: list[Event]) -> list[dict[str, Any]]:
    return EVENT_SCHEMA.dump(events, many=True)


_WIRE_KEYS = frozenset(EventSchema().fields)
_TEXT_FIELDS = ("recipient", "sender", "text", "provider_status", "description")


def _from_wire(data: Any) -> Event | None:
    """The event of a wire form as `wire` writes it, without marshmallow's field walk; None for anything else.

    A handler job carries hundreds of events, and the schema's load cost a worker more than the
    database insert they go to. Anything not exactly `wire`'s shape goes through the schema, which
    says what is wrong with it.
    """
    if not isinstance(data, dict) or data.keys() != _WIRE_KEYS:
        return None
    event_id, provider, message_id, raw = data["event_id"], data["provider"], data["message_id"], data["raw"]
    if not (isinstance(event_id, str) and isinstance(provider, str) and isinstance(message_id, str) and message_id):
        return None
    if not (isinstance(raw, dict) and isinstance(data["final"], bool)):
        return None
    if not all(data[name] is None or isinstance(data[name], str) for name in _TEXT_FIELDS):
        return None
    try:
        occurred_at, received_at = _utc(data["occurred_at"]), _utc(data["received_at"])
        kind, status = Kind(data["kind"]), Status(data["status"])
    except (TypeError, ValueError):
        return None
    return Event(
        provider=provider,
        kind=kind,
        status=status,
        message_id=message_id,
        received_at=received_at,
        occurred_at=occurred_at,
        final=data["final"],
        recipient=data["recipient"],
        sender=data["sender"],
        text=data["text"],
        provider_status=data["provider_status"],
        description=data["description"],
        raw=raw,
        event_id=event_id,
    )


def _utc(value: str) -> datetime:
    """As EventSchema reads a time: ISO 8601, UTC when it names no zone (wire always writes +00:00)."""
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed


def load_events(data: list[dict[str, Any]]) -> list[Event]:
    """Events from their wire form (`wire`): directly when it is exactly that, else through EventSchema."""
    fast = [_from_wire(item) for item in data]
    events = [event for event in fast if event is not None]
    return events if len(events) == len(data) else EVENT_SCHEMA.load(data, many=True)
