"""The claim's whole sort order in one index: (priority, scheduled_for, id).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21

The dispatcher claims `ORDER BY priority, scheduled_for, id LIMIT n FOR UPDATE
SKIP LOCKED`. With the index on (priority, scheduled_for) alone, a backlog
whose rows share one `scheduled_for` (a planner batch, a bulk import) made
PostgreSQL sort every due row for each claim: 275 ms per claim at 1M due rows,
3 ms with this index (`steady bench`, docs/performance.md). Built concurrently
on PostgreSQL so sending goes on while it is created; the old index goes after.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

DUE = sa.text("status = 'scheduled'")


def _swap(create: str, columns: list[str], drop: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index(
                create,
                "messages",
                columns,
                postgresql_where=DUE,
                postgresql_concurrently=True,
                if_not_exists=True,
            )
            op.drop_index(drop, table_name="messages", postgresql_concurrently=True, if_exists=True)
        return
    op.create_index(create, "messages", columns, sqlite_where=DUE)
    op.drop_index(drop, table_name="messages")


def upgrade() -> None:
    _swap("ix_messages_claim", ["priority", "scheduled_for", "id"], "ix_messages_due")


def downgrade() -> None:
    _swap("ix_messages_due", ["priority", "scheduled_for"], "ix_messages_claim")
