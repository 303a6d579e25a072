"""Archive tables for `steady archive`, and the messages' creation-time index.

Revision ID: 0008
Revises: 0004
Create Date: 2026-12-05

`messages_archive` and `delivery_events_archive` take the live tables' rows once they
are older than STEADY_RETENTION_DAYS (service/storage/archive.py): same columns, no
foreign keys, plus `archived_at`. `ix_messages_created_at` serves the message log's
order (`steady messages --since`) and the archive's scan; on PostgreSQL it is built
concurrently, so sending goes on meanwhile. Additive only: the previous release keeps
running while this is applied.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0005"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "messages_archive",
        sa.Column("id", BIG_ID, autoincrement=False, nullable=False),
        sa.Column("subscriber_id", BIG_ID, nullable=True),
        sa.Column("channel_id", BIG_ID, nullable=True),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("template", sa.String(length=64), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("provider", sa.String(length=16), nullable=True),
        sa.Column("provider_id", sa.String(length=64), nullable=True),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("error_detail", sa.String(length=300), nullable=True),
        sa.Column("opened_at", sa.DateTime(), nullable=True),
        sa.Column("clicked_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("archived_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages_archive")),
    )
    with op.batch_alter_table("messages_archive", schema=None) as batch_op:
        batch_op.create_index(
            "ix_messages_archive_subscriber_created", ["subscriber_id", "created_at"], unique=False
        )
        batch_op.create_index("ix_messages_archive_created_at", ["created_at"], unique=False)

    op.create_table(
        "delivery_events_archive",
        sa.Column("id", BIG_ID, autoincrement=False, nullable=False),
        sa.Column("message_id", BIG_ID, nullable=True),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("event_key", sa.String(length=128), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("occurred_at", sa.DateTime(), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("archived_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_events_archive")),
    )
    with op.batch_alter_table("delivery_events_archive", schema=None) as batch_op:
        batch_op.create_index("ix_delivery_events_archive_message_id", ["message_id"], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index(
                "ix_messages_created_at",
                "messages",
                ["created_at"],
                postgresql_concurrently=True,
                if_not_exists=True,
            )
    else:
        op.create_index("ix_messages_created_at", "messages", ["created_at"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.drop_index(
                "ix_messages_created_at",
                table_name="messages",
                postgresql_concurrently=True,
                if_exists=True,
            )
    else:
        op.drop_index("ix_messages_created_at", table_name="messages")
    op.drop_table("delivery_events_archive")
    op.drop_table("messages_archive")
