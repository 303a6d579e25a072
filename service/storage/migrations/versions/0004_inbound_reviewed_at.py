"""Operator review: when an operator cleared an unrecognised or crisis text.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05

`inbound_messages.reviewed_at` is NULL until an operator clears the person
(/admin/review, service/people/review.py). A nullable column: the previous
release keeps inserting rows without it. The review list reads the unreviewed
texts Steady did not understand, so a partial index keeps that read small.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UNREVIEWED = sa.text("reviewed_at IS NULL AND command = 'unknown'")


def upgrade() -> None:
    op.add_column("inbound_messages", sa.Column("reviewed_at", sa.DateTime(), nullable=True))
    op.create_index(
        "ix_inbound_messages_unreviewed",
        "inbound_messages",
        ["received_at"],
        postgresql_where=UNREVIEWED,
        sqlite_where=UNREVIEWED,
    )


def downgrade() -> None:
    op.drop_index("ix_inbound_messages_unreviewed", table_name="inbound_messages")
    with op.batch_alter_table("inbound_messages") as batch:
        batch.drop_column("reviewed_at")
