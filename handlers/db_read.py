"""Reading the database handler's tables for the console and the read API (SQLAlchemy Core, no Flask).

Every event comes out in its wire form (webhooks.events.EventSchema's field names), so what the
API answers and what the forward handler delivers look the same. Two orders:
    latest()  newest first, for people (the console's Events page), paged by `before`
    feed()    in the order stored, for programs polling with `after`: the database handler
              assigns ids and commits in one order (handlers/database.py), so a row with a
              higher id is never visible before one with a lower id, and a cursor never skips
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import and_, func, or_, select, union_all
from sqlalchemy.engine import Engine

from webhooks.phones import to_e164

from .database import make_engine
from .db_schema import sms_events, sms_messages

SEARCH_LIMIT = 50
MESSAGE_EVENTS_LIMIT = 1000  # a message's timeline; no real message has more
WIRE_FIELDS = (
    "event_id",
    "provider",
    "kind",
    "status",
    "final",
    "message_id",
    "recipient",
    "sender",
    "text",
    "provider_status",
    "description",
    "occurred_at",
    "received_at",
    "raw",
)
MESSAGE_FIELDS = ("recipient", "status", "final", "provider_status", "description", "status_at", "updated_at")


def _utc(value: datetime | None) -> str | None:
    """ISO 8601 in UTC; SQLite gives back naive datetimes, which were stored as UTC."""
    if value is None:
        return None
    aware = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    return aware.isoformat()


def _as_stored(value: str) -> str:
    """A value looked up as the handler stored it (NUL replaced: PostgreSQL refuses it in text)."""
    return value.replace("\x00", "\ufffd")


def wire(row: Mapping[str, Any] | Any) -> dict[str, Any]:
    """An sms_events row as the event's wire form."""
    event = {name: row[name] for name in WIRE_FIELDS}
    event["occurred_at"], event["received_at"] = _utc(row["occurred_at"]), _utc(row["received_at"])
    return event


@dataclasses.dataclass
class Message:
    """A message: its sms_messages row (None when only events name it, as unread emails) and every event."""

    provider: str
    message_id: str
    status: dict[str, Any] | None
    events: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        status = self.status or {}
        return {
            "provider": self.provider,
            "message_id": self.message_id,
            **{name: status.get(name) for name in (*MESSAGE_FIELDS, "overdue_since")},
            "events": self.events,
        }


@dataclasses.dataclass
class Found:
    """One search result: a message, its current status (when it has a row) and its latest event."""

    provider: str
    message_id: str
    status: str | None
    final: bool | None
    recipient: str | None
    last_event: dict[str, Any]


@dataclasses.dataclass
class Page:
    """Events and the id to continue from (None: no more, for latest(); the same cursor, for feed())."""

    events: list[dict[str, Any]]
    ids: list[int]
    more: bool


class Reader:
    """Queries over sms_events and sms_messages; one engine (and its pool) per process."""

    def __init__(self, url_or_engine: str | Engine) -> None:
        self.engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine

    def message(self, provider: str, message_id: str) -> Message | None:
        """The message and its events, oldest first; None when nothing names it."""
        provider, message_id = _as_stored(provider), _as_stored(message_id)
        with self.engine.connect() as conn:
            row = conn.execute(
                select(sms_messages).where(sms_messages.c.provider == provider, sms_messages.c.message_id == message_id)
            ).first()
            events = conn.execute(
                select(sms_events)
                .where(sms_events.c.provider == provider, sms_events.c.message_id == message_id)
                .order_by(sms_events.c.id)
                .limit(MESSAGE_EVENTS_LIMIT)
            ).all()
        if row is None and not events:
            return None
        status = None
        if row is not None:
            status = {name: row._mapping[name] for name in MESSAGE_FIELDS}
            status.update(
                status_at=_utc(row.status_at), updated_at=_utc(row.updated_at), overdue_since=_utc(row.overdue_since)
            )
        return Message(provider, message_id, status, [wire(e._mapping) for e in events])

    def search(self, query: str, region: str | None = None, limit: int = SEARCH_LIMIT) -> list[Found]:
        """Messages whose provider id is `query`, or that went to or came from the phone `query`; newest first.

        The phone is normalised as callbacks' numbers are (webhooks.phones.to_e164 with PHONE_REGION),
        so `0409 000 000` finds what was stored as `+61409000000`.
        """
        text = _as_stored(query.strip())
        if not text:
            return []
        phone = to_e164(text, region) or text
        e = sms_events.c
        # One indexed lookup per column, joined: an OR of the three makes SQLite scan the table.
        hits_of = union_all(
            *(
                select(e.id, e.provider, e.message_id).where(test)
                for test in (e.message_id == text, e.recipient == phone, e.sender == phone)
            )
        ).subquery()
        last = func.max(hits_of.c.id).label("last")
        matched = (
            select(hits_of.c.provider, hits_of.c.message_id, last)
            .group_by(hits_of.c.provider, hits_of.c.message_id)
            .order_by(last.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            hits = conn.execute(matched).all()
            if not hits:
                return []
            lasts = {r.id: r._mapping for r in conn.execute(select(sms_events).where(e.id.in_([h.last for h in hits])))}
            m = sms_messages.c
            pairs = [and_(m.provider == h.provider, m.message_id == h.message_id) for h in hits]
            rows = {(r.provider, r.message_id): r for r in conn.execute(select(sms_messages).where(or_(*pairs)))}
        found = []
        for hit in hits:
            event, row = lasts[hit.last], rows.get((hit.provider, hit.message_id))
            found.append(
                Found(
                    hit.provider,
                    hit.message_id,
                    row.status if row is not None else None,
                    row.final if row is not None else None,
                    (row.recipient if row is not None else None) or event["recipient"] or event["sender"],
                    wire(event),
                )
            )
        return found

    def latest(self, filters: Mapping[str, str | None], before: int | None = None, limit: int = 50) -> Page:
        """The newest events matching `filters` (provider, kind, status), below id `before`."""
        stmt = self._filtered(filters)
        if before is not None:
            stmt = stmt.where(sms_events.c.id < before)
        return self._page(stmt.order_by(sms_events.c.id.desc()), limit)

    def feed(self, filters: Mapping[str, str | None], after: int = 0, limit: int = 100) -> Page:
        """Events matching `filters` stored after id `after`, in the order they were stored."""
        stmt = self._filtered(filters).where(sms_events.c.id > after)
        return self._page(stmt.order_by(sms_events.c.id), limit)

    def counts(self) -> int:
        """How many events are stored (for tests and benches)."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(sms_events)).scalar_one())

    @staticmethod
    def _filtered(filters: Mapping[str, str | None]) -> Any:
        stmt = select(sms_events)
        for name in ("provider", "kind", "status"):
            if filters.get(name):
                stmt = stmt.where(sms_events.c[name] == _as_stored(str(filters[name])))
        return stmt

    def _page(self, stmt: Any, limit: int) -> Page:
        with self.engine.connect() as conn:
            rows = conn.execute(stmt.limit(limit + 1)).all()
        kept: Sequence[Any] = rows[:limit]
        return Page([wire(r._mapping) for r in kept], [r.id for r in kept], len(rows) > limit)

    def close(self) -> None:
        self.engine.dispose()
