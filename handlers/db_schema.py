"""The database handler's tables (SQLAlchemy Core): the same schema on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY.
_ID = BigInteger().with_variant(Integer(), "sqlite")

# One row per event; the unique event_id makes a re-delivered job insert nothing twice.
sms_events = Table(
    "sms_events",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("event_id", String(80), nullable=False, unique=True),
    Column("provider", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("final", Boolean, nullable=False),
    Column("message_id", String(64), nullable=False),
    Column("recipient", String(64)),
    Column("sender", String(64)),
    Column("text", Text),
    Column("provider_status", String(64)),
    Column("description", Text),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("stored_at", DateTime(timezone=True), nullable=False),
    Column("raw", JSON, nullable=False),
    Index("ix_sms_events_message", "provider", "message_id"),
    # The console's search and the event listings with each filter (migration 0003).
    Index("ix_sms_events_recipient", "recipient"),
    Index("ix_sms_events_sender", "sender"),
    Index("ix_sms_events_message_id", "message_id"),
    Index("ix_sms_events_provider_id", "provider", "id"),
    Index("ix_sms_events_kind_status_id", "kind", "status", "id"),
    Index("ix_sms_events_status_id", "status", "id"),
)

# One row per message we sent, with where it has got to. `status_rank` orders the
# statuses (events.STATUS_RANK) so the upsert can refuse to move a message backwards.
sms_messages = Table(
    "sms_messages",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("provider", String(32), nullable=False),
    Column("message_id", String(64), nullable=False),
    Column("recipient", String(64)),
    Column("status", String(16), nullable=False),
    Column("status_rank", SmallInteger, nullable=False),
    Column("final", Boolean, nullable=False),
    Column("provider_status", String(64)),
    Column("description", Text),
    Column("status_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # Set by a receipt_overdue event (the receipt watchdog's deadline), cleared by a final status.
    Column("overdue_since", DateTime(timezone=True)),
    UniqueConstraint("provider", "message_id", name="uq_sms_messages_provider_message"),
    # The console's search by phone or by message id across providers (migration 0003).
    Index("ix_sms_messages_recipient", "recipient"),
    Index("ix_sms_messages_message_id", "message_id"),
)
