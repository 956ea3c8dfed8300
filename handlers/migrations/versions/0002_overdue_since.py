"""sms_messages.overdue_since: when the receipt watchdog found the message without a final status.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database made by create_all with this release's tables, then stamped at 0001
    # (handlers/migrate.py), already has the column.
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("sms_messages")}
    if "overdue_since" not in columns:
        op.add_column("sms_messages", sa.Column("overdue_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("smshooks migrations go forward only")
