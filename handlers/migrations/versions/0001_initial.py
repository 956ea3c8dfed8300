"""The tables as smshooks 0.1 created them (sms_events, sms_messages).

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sms_events",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(80), nullable=False, unique=True),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("final", sa.Boolean, nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("recipient", sa.String(64)),
        sa.Column("sender", sa.String(64)),
        sa.Column("text", sa.Text),
        sa.Column("provider_status", sa.String(64)),
        sa.Column("description", sa.Text),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("raw", sa.JSON, nullable=False),
    )
    op.create_index("ix_sms_events_message", "sms_events", ["provider", "message_id"])
    op.create_table(
        "sms_messages",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("recipient", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_rank", sa.SmallInteger, nullable=False),
        sa.Column("final", sa.Boolean, nullable=False),
        sa.Column("provider_status", sa.String(64)),
        sa.Column("description", sa.Text),
        sa.Column("status_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("provider", "message_id", name="uq_sms_messages_provider_message"),
    )


def downgrade() -> None:
    raise NotImplementedError("smshooks migrations go forward only")
