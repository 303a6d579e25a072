"""Indexes for the dashboard's time series: sends per hour, opt-outs per day.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21

Additive only, so the previous release keeps running while it is applied.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index("ix_messages_sent_at", ["sent_at"], unique=False)
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.create_index("ix_channels_stopped_at", ["stopped_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.drop_index("ix_channels_stopped_at")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_sent_at")
