"""The `database` handler: every event a row in `sms_events`, every message its status in `sms_messages`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Table, and_, case, create_engine, false, func, null, or_, text, true
from sqlalchemy import event as sa_event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url

from webhooks.config import DEFAULT_DATABASE_URL, normalize_database_url
from webhooks.events import STATUS_RANK, Event, Kind, Status

from .base import Handler
from .db_schema import sms_events, sms_messages

# Each dialect's own insert, which has ON CONFLICT (the generic `sqlalchemy.insert` has not).
_INSERT: dict[str, Callable[[Table], sqlite.Insert | postgresql.Insert]] = {
    "sqlite": sqlite.insert,
    "postgresql": postgresql.insert,
}


# The advisory lock the inserts take on PostgreSQL (any constant of our own: "smshooks" as digits).
INSERT_LOCK = 0x736D73686F6F6B73


def make_engine(url: str) -> Engine:
    parsed = make_url(normalize_database_url(url))
    if parsed.get_backend_name() not in _INSERT:
        raise ValueError(f"DATABASE_URL must be sqlite:// or postgres(ql)://, got a {parsed.get_backend_name()} URL")
    engine = create_engine(parsed, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        # WAL lets readers (you, with sqlite3) look while the worker writes; busy_timeout
        # makes a second worker wait for the lock instead of failing.
        @sa_event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.close()

    return engine


def init_db(url: str) -> None:
    """Bring the schema up to date with Alembic (the Procfile's release step); see handlers.migrations."""
    from .migrate import upgrade

    engine = make_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


def _clean(value: str | None) -> str | None:
    """PostgreSQL refuses NUL in text; one such reply would fail its whole batch on every retry."""
    return value.replace("\x00", "\ufffd") if value and "\x00" in value else value


def _message_status(event: Event) -> Status:
    # A reply means the message reached the phone and was answered.
    return Status.REPLIED if event.kind is Kind.REPLY else event.status


def _latest_per_message(events: Sequence[Event]) -> list[Event]:
    """The furthest-along event of each message in the batch, so one row is upserted once."""
    best: dict[tuple[str, str], Event] = {}
    for event in events:
        if event.kind in (Kind.UNKNOWN, Kind.RECEIPT_OVERDUE):
            # An unread email says nothing about a message's status; an overdue alert repeats the
            # last one (it sets overdue_since, below). Both are kept in sms_events.
            continue
        key = (event.provider, event.message_id)
        current = best.get(key)
        if current is None or (STATUS_RANK[_message_status(event)], event.occurred_at) > (
            STATUS_RANK[_message_status(current)],
            current.occurred_at,
        ):
            best[key] = event
    return list(best.values())


class DatabaseHandler(Handler):
    """SQLAlchemy 2 on SQLite (default) or PostgreSQL; one transaction per batch."""

    name = "database"

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self._insert = _INSERT[self.engine.dialect.name]
        self.ordered_ids = self.engine.dialect.name == "postgresql"  # off only in bench/ordered_ids.py

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DatabaseHandler:
        return cls(env.get("DATABASE_URL") or DEFAULT_DATABASE_URL)

    def handle(self, event: Event) -> None:
        self.handle_batch([event])

    def handle_batch(self, events: Sequence[Event]) -> None:
        if not events:
            return
        now = datetime.now(timezone.utc)
        with self.engine.begin() as conn:
            messages = [self._message_row(e, now) for e in _latest_per_message(events)]
            if messages:
                conn.execute(self._message_upsert(), messages)
            # After the statuses: a final status in the same batch wins over the alert.
            overdue = {(e.provider, e.message_id): e for e in events if e.kind is Kind.RECEIPT_OVERDUE}
            if overdue:
                conn.execute(self._overdue_upsert(), [self._overdue_row(e, now) for e in overdue.values()])
            if self.ordered_ids:
                # Ids are taken and committed in one order, so the read API's `after` cursor never
                # passes an id still being written (handlers/db_read.py); SQLite has one writer anyway.
                # Taken last, so only the events' insert and the commit wait for it, and its holder
                # waits for no row another transaction holds (no deadlock).
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": INSERT_LOCK})
            conn.execute(
                self._insert(sms_events).on_conflict_do_nothing(index_elements=["event_id"]),
                [self._event_row(e, now) for e in events],
            )

    def _message_upsert(self) -> Any:
        stmt = self._insert(sms_messages)
        new, old = stmt.excluded, sms_messages.c
        moves_forward = or_(
            old.status_rank < new.status_rank,
            and_(old.status_rank == new.status_rank, old.final == false(), new.status_at > old.status_at),
        )
        return stmt.on_conflict_do_update(
            index_elements=["provider", "message_id"],
            set_={
                c: getattr(new, c)
                for c in ("status", "status_rank", "final", "provider_status", "description", "status_at", "updated_at")
            }
            | {
                "recipient": func.coalesce(old.recipient, new.recipient),
                # A final status clears the receipt watchdog's alert.
                "overdue_since": case((new.final == true(), null()), else_=old.overdue_since),
            },
            where=moves_forward,
        )

    def _overdue_upsert(self) -> Any:
        """overdue_since on a message not final (kept if already set); a message never seen gets a row."""
        stmt = self._insert(sms_messages)
        new, old = stmt.excluded, sms_messages.c
        return stmt.on_conflict_do_update(
            index_elements=["provider", "message_id"],
            set_={"overdue_since": func.coalesce(old.overdue_since, new.overdue_since), "updated_at": new.updated_at},
            where=old.final == false(),
        )

    @staticmethod
    def _overdue_row(e: Event, now: datetime) -> dict[str, Any]:
        last_at = e.raw.get("last_status_at")
        return {
            "provider": e.provider,
            "message_id": _clean(e.message_id),
            "recipient": _clean(e.recipient),
            "status": e.status.value,
            "status_rank": STATUS_RANK[e.status],
            "final": False,
            "provider_status": None,
            "description": None,
            "status_at": datetime.fromisoformat(last_at) if isinstance(last_at, str) else e.occurred_at,
            "updated_at": now,
            "overdue_since": e.occurred_at,  # the deadline
        }

    @staticmethod
    def _event_row(e: Event, now: datetime) -> dict[str, Any]:
        return {
            "event_id": e.event_id,
            "provider": e.provider,
            "kind": e.kind.value,
            "status": e.status.value,
            "final": e.final,
            "message_id": _clean(e.message_id),
            "recipient": _clean(e.recipient),
            "sender": _clean(e.sender),
            "text": _clean(e.text),
            "provider_status": _clean(e.provider_status),
            "description": _clean(e.description),
            "occurred_at": e.occurred_at,
            "received_at": e.received_at,
            "stored_at": now,
            "raw": e.raw,
        }

    @staticmethod
    def _message_row(e: Event, now: datetime) -> dict[str, Any]:
        status = _message_status(e)
        return {
            "provider": e.provider,
            "message_id": _clean(e.message_id),
            "recipient": _clean(e.recipient if e.kind is Kind.RECEIPT else e.sender),
            "status": status.value,
            "status_rank": STATUS_RANK[status],
            "final": e.final,
            "provider_status": _clean(e.provider_status),
            "description": _clean(e.description),
            "status_at": e.occurred_at,
            "updated_at": now,
        }

    def close(self) -> None:
        self.engine.dispose()
