"""The decision log, the decision clock and the experiment opt-out.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28

`decisions`: one append-only row per decision point per subscriber (PRODUCT.md,
"Learning what helps"). `subscribers.next_decision_at`: the next decision point
while STEADY_EXPERIMENT is on. `subscribers.experiment_opt_out`: the person asked
not to be part of the randomisation. Both columns are nullable or have a server
default, so the previous release keeps running while this one rolls out.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers") as batch_op:
        batch_op.add_column(sa.Column("next_decision_at", sa.DateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("experiment_opt_out", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.create_index("ix_subscribers_next_decision_at", ["next_decision_at"])
    op.create_table(
        "decisions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column(
            "subscriber_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("available", sa.Boolean(), nullable=False),
        sa.Column("unavailable_reason", sa.String(length=32), nullable=True),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("probabilities", sa.JSON(), nullable=False),
        sa.Column("chosen", sa.String(length=32), nullable=False),
        sa.Column("policy", sa.String(length=32), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("draw", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_decisions_subscriber_id_subscribers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
    )
    op.create_index("ix_decisions_subscriber_at", "decisions", ["subscriber_id", "at"])
    op.create_index("ix_decisions_at", "decisions", ["at"])


def downgrade() -> None:
    op.drop_index("ix_decisions_at", table_name="decisions")
    op.drop_index("ix_decisions_subscriber_at", table_name="decisions")
    op.drop_table("decisions")
    with op.batch_alter_table("subscribers") as batch_op:
        batch_op.drop_index("ix_subscribers_next_decision_at")
        batch_op.drop_column("experiment_opt_out")
        batch_op.drop_column("next_decision_at")
