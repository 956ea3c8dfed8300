"""Indexes for the console and the read API: search by phone and message id, event listings by filter.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# (name, table, columns): the same as handlers/db_schema.py declares.
INDEXES = [
    ("ix_sms_events_recipient", "sms_events", ["recipient"]),
    ("ix_sms_events_sender", "sms_events", ["sender"]),
    ("ix_sms_events_message_id", "sms_events", ["message_id"]),
    ("ix_sms_events_provider_id", "sms_events", ["provider", "id"]),
    ("ix_sms_events_kind_status_id", "sms_events", ["kind", "status", "id"]),
    ("ix_sms_events_status_id", "sms_events", ["status", "id"]),
    ("ix_sms_messages_recipient", "sms_messages", ["recipient"]),
    ("ix_sms_messages_message_id", "sms_messages", ["message_id"]),
]


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, if_not_exists=True)


def downgrade() -> None:
    raise NotImplementedError("smshooks migrations go forward only")
