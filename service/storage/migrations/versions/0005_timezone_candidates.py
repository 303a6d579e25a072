"""Candidate time zones of a subscriber who has not named theirs.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28

A number that fits several zones (a split US area code, an Australian mobile)
keeps the quiet hours of every one until the person names their zone
(PRODUCT.md, "Law"). A nullable column: the previous release neither reads nor
writes it, and NULL means what every existing row means (the zone is known).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("subscribers", sa.Column("timezone_candidates", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("timezone_candidates")
