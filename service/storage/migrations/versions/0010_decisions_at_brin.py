"""The decision log's time index becomes a BRIN index on PostgreSQL.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05

`decisions` is append-only and written in time order (each planning pass logs its
points as it decides them), so its rows' `at` follows their place in the table. A
BRIN index keeps the least and greatest `at` of each block range: a few pages where
the b-tree grows with every row (at three points a day, a million subscribers add a
billion rows a year), and nothing to update for each row the planner COPYs in. Reads by
time (`steady decisions --since`, `evaluate`) still skip the ranges before `since`.
SQLite keeps its b-tree (it has no BRIN). Built concurrently on PostgreSQL, after the
new index exists the old one goes: the planner keeps writing meanwhile.
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_decisions_at_brin",
            "decisions",
            ["at"],
            postgresql_using="brin",
            postgresql_concurrently=True,
            if_not_exists=True,
        )
        op.drop_index(
            "ix_decisions_at", table_name="decisions", postgresql_concurrently=True, if_exists=True
        )
        op.execute("ALTER INDEX ix_decisions_at_brin RENAME TO ix_decisions_at")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_decisions_at_btree",
            "decisions",
            ["at"],
            postgresql_concurrently=True,
            if_not_exists=True,
        )
        op.drop_index(
            "ix_decisions_at", table_name="decisions", postgresql_concurrently=True, if_exists=True
        )
        op.execute("ALTER INDEX ix_decisions_at_btree RENAME TO ix_decisions_at")
