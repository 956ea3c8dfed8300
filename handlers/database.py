"""The `database` handler: every event a row in `sms_events`, every message its status in `sms_messages`."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Select,
    String,
    Table,
    Text,
    and_,
    bindparam,
    case,
    cast,
    column,
    create_engine,
    false,
    func,
    null,
    or_,
    select,
    text,
    true,
)
from sqlalchemy import event as sa_event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url

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

# The columns each statement writes (sms_events' id is the database's own).
_EVENT_COLUMNS = tuple(c.name for c in sms_events.c if c.name != "id")
_MESSAGE_COLUMNS = (
    "provider",
    "message_id",
    "recipient",
    "status",
    "status_rank",
    "final",
    "provider_status",
    "description",
    "status_at",
    "updated_at",
)
_OVERDUE_COLUMNS = (*_MESSAGE_COLUMNS, "overdue_since")

PAGE = 1000  # rows per statement on PostgreSQL: a batch of BATCH_SIZE (500) is one


def _rows_from_json(table: Table, columns: Sequence[str]) -> Select:
    """PostgreSQL: the rows of the JSON parameter `rows` (an array of objects) as `columns` of `table`.

    One statement per batch, compiled once whatever the batch's size. psycopg's executemany runs
    one INSERT per row at the server (SQLAlchemy's insertmanyvalues is for RETURNING only there),
    multi-row VALUES costs a compile per batch, and unnest(one array per column) spends its time
    in psycopg's array quoting. Strings come as text so that the INSERT itself checks their length,
    as before; `raw` is JSON text inside the JSON (see _as_json), cast back to JSON.
    """
    fields = [column(c, Text if isinstance(table.c[c].type, (String, JSON)) else table.c[c].type) for c in columns]
    rows = func.json_to_recordset(cast(bindparam("rows", type_=Text), JSON)).table_valued(*fields)
    rows = rows.render_derived(name="batch", with_types=True)
    return select(*(cast(rows.c[c], JSON) if c == "raw" else rows.c[c] for c in columns))


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"a {type(value).__name__} cannot go into the database's JSON rows: {value!r}")


def _as_json(rows: Sequence[dict[str, Any]]) -> str:
    """The `rows` parameter of _rows_from_json.

    `raw` goes as its own JSON text, a string: json_to_recordset refuses an escaped NUL in a string it
    converts, and `raw` keeps the payload as it came, NUL included (the text columns are _clean).
    Not ASCII-escaped: the server then decodes no unicode escapes, which a non-UTF-8 database refuses.
    """
    return json.dumps(
        [row | {"raw": json.dumps(row["raw"])} if "raw" in row else row for row in rows],
        default=_iso,
        ensure_ascii=False,
    )


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


def _message_key(event: Event) -> tuple[str, str | None]:
    # As stored: one statement may not upsert a row twice (PostgreSQL refuses it).
    return event.provider, _clean(event.message_id)


def _latest_per_message(events: Sequence[Event]) -> list[Event]:
    """The furthest-along event of each message in the batch, so one row is upserted once."""
    best: dict[tuple[str, str | None], Event] = {}
    for event in events:
        if event.kind in (Kind.UNKNOWN, Kind.RECEIPT_OVERDUE):
            # An unread email says nothing about a message's status; an overdue alert repeats the
            # last one (it sets overdue_since, below). Both are kept in sms_events.
            continue
        key = _message_key(event)
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
        self._events_insert = self._rows_into(sms_events, _EVENT_COLUMNS).on_conflict_do_nothing(
            index_elements=["event_id"]
        )
        self._messages_upsert = self._message_upsert(self._rows_into(sms_messages, _MESSAGE_COLUMNS))
        self._overdue_upsert = self._overdue_upsert_of(self._rows_into(sms_messages, _OVERDUE_COLUMNS))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DatabaseHandler:
        return cls(env.get("DATABASE_URL") or DEFAULT_DATABASE_URL)

    def handle(self, event: Event) -> None:
        self.handle_batch([event])

    def handle_batch(self, events: Sequence[Event]) -> None:
        if not events:
            return
        now = datetime.now(timezone.utc)
        messages = [self._message_row(e, now) for e in _latest_per_message(events)]
        overdue = {_message_key(e): e for e in events if e.kind is Kind.RECEIPT_OVERDUE}
        rows = [self._event_row(e, now) for e in events]  # made before the lock below, not while holding it
        with self.engine.begin() as conn:
            self._write(conn, self._messages_upsert, messages)
            # After the statuses: a final status in the same batch wins over the alert.
            self._write(conn, self._overdue_upsert, [self._overdue_row(e, now) for e in overdue.values()])
            if self.ordered_ids:
                # Ids are taken and committed in one order, so the read API's `after` cursor never
                # passes an id still being written (handlers/db_read.py); SQLite has one writer anyway.
                # Taken last, so only the events' insert and the commit wait for it, and its holder
                # waits for no row another transaction holds (no deadlock).
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": INSERT_LOCK})
            self._write(conn, self._events_insert, rows)

    def _rows_into(self, table: Table, columns: Sequence[str]) -> Any:
        """The insert of many rows: on PostgreSQL from one JSON parameter, on SQLite executemany's."""
        if self.engine.dialect.name == "postgresql":
            return self._insert(table).from_select(list(columns), _rows_from_json(table, columns))
        return self._insert(table)

    def _write(self, conn: Connection, stmt: Any, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        if self.engine.dialect.name != "postgresql":
            conn.execute(stmt, rows)  # SQLite's executemany runs in this process: no round trips to save
            return
        for start in range(0, len(rows), PAGE):
            conn.execute(stmt, {"rows": _as_json(rows[start : start + PAGE])})

    @staticmethod
    def _message_upsert(stmt: Any) -> Any:
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

    @staticmethod
    def _overdue_upsert_of(stmt: Any) -> Any:
        """overdue_since on a message not final (kept if already set); a message never seen gets a row."""
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
