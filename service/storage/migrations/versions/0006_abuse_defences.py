"""Abuse defences (issue 11): mailbox keys, proven channel joins, server-side admin
sessions, and running tallies of messages and delivery events kept by triggers.

Revision ID: 0006
Revises: 0008
Create Date: 2026-11-22

Additive, so the previous release keeps running while it is applied: new nullable
columns, new tables, and triggers that only write to the new tables. The tallies
are filled from the existing rows after the triggers exist, in the same
transaction: creating a trigger locks `messages` against writes until commit, so
no change falls between the count and the first trigger.

SQLite drops a table's triggers when a batch migration rebuilds the table:
a later revision that rebuilds `messages` or `delivery_events` must create them
again (`create_tally_triggers`); tests/reporting/test_tallies.py fails otherwise.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.addresses import mailbox_key

revision = "0006"
down_revision = "0008"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
BACKFILL_BATCH = 1000

# (topic, source table, the key columns as SQL: kind, channel, status)
TALLIED = (
    ("messages", "messages", "kind", "channel", "status"),
    ("delivery_events", "delivery_events", "''", "''", "event_type"),
)

POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION steady_tally_{table}() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO tally_deltas (topic, kind, channel, status, n)
    SELECT '{topic}', {kind}, {channel}, {status}, count(*) FROM new_rows
    GROUP BY 2, 3, 4;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO tally_deltas (topic, kind, channel, status, n)
    SELECT '{topic}', {kind}, {channel}, {status}, -count(*) FROM old_rows
    GROUP BY 2, 3, 4;
  ELSE
    INSERT INTO tally_deltas (topic, kind, channel, status, n)
    SELECT '{topic}', k, c, s, sum(d) FROM (
      SELECT {kind} AS k, {channel} AS c, {status} AS s, 1 AS d FROM new_rows
      UNION ALL
      SELECT {kind}, {channel}, {status}, -1 FROM old_rows
    ) AS moved
    GROUP BY k, c, s HAVING sum(d) <> 0;
  END IF;
  RETURN NULL;
END
$$
"""

POSTGRES_TRIGGERS = (
    ("insert", "INSERT", "REFERENCING NEW TABLE AS new_rows"),
    ("update", "UPDATE", "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"),
    ("delete", "DELETE", "REFERENCING OLD TABLE AS old_rows"),
)

# SQLite has one writer at a time, so its triggers add to the totals directly.
SQLITE_UPSERT = (
    "INSERT INTO tallies (topic, kind, channel, status, n) VALUES {values} "
    "ON CONFLICT (topic, kind, channel, status) DO UPDATE SET n = n + excluded.n;"
)


def _sqlite_row(topic: str, row: str, key: tuple[str, str, str], sign: int) -> str:
    kind, channel, status = (part if part == "''" else f"{row}.{part}" for part in key)
    return f"('{topic}', {kind}, {channel}, {status}, {sign})"


def create_tally_triggers() -> None:
    """The triggers that keep `tallies` (see the module docstring)."""
    bind = op.get_bind()
    for topic, table, *key_columns in TALLIED:
        key = (key_columns[0], key_columns[1], key_columns[2])
        if bind.dialect.name == "postgresql":
            kind, channel, status = key
            op.execute(
                POSTGRES_FUNCTION.format(
                    table=table, topic=topic, kind=kind, channel=channel, status=status
                )
            )
            for name, event, referencing in POSTGRES_TRIGGERS:
                op.execute(
                    f"CREATE TRIGGER tally_{table}_{name} AFTER {event} ON {table} "
                    f"{referencing} FOR EACH STATEMENT EXECUTE FUNCTION steady_tally_{table}()"
                )
            continue
        new_row = _sqlite_row(topic, "NEW", key, 1)
        old_row = _sqlite_row(topic, "OLD", key, -1)
        changed = " OR ".join(
            f"OLD.{column} IS NOT NEW.{column}" for column in key if column != "''"
        )
        columns = ", ".join(column for column in key if column != "''")
        op.execute(
            f"CREATE TRIGGER tally_{table}_insert AFTER INSERT ON {table} BEGIN "
            + SQLITE_UPSERT.format(values=new_row)
            + " END"
        )
        op.execute(
            f"CREATE TRIGGER tally_{table}_update AFTER UPDATE OF {columns} ON {table} "
            f"WHEN {changed} BEGIN " + SQLITE_UPSERT.format(values=f"{old_row}, {new_row}") + " END"
        )
        op.execute(
            f"CREATE TRIGGER tally_{table}_delete AFTER DELETE ON {table} BEGIN "
            + SQLITE_UPSERT.format(values=old_row)
            + " END"
        )


def drop_tally_triggers() -> None:
    bind = op.get_bind()
    for _topic, table, *_key in TALLIED:
        for name, _event, _referencing in POSTGRES_TRIGGERS:
            op.execute(
                f"DROP TRIGGER IF EXISTS tally_{table}_{name}"
                + (f" ON {table}" if bind.dialect.name == "postgresql" else "")
            )
        if bind.dialect.name == "postgresql":
            op.execute(f"DROP FUNCTION IF EXISTS steady_tally_{table}()")


def _backfill_tallies() -> None:
    for topic, table, kind, channel, status in TALLIED:
        # Names and literals from TALLIED above, nothing from outside.
        select_counts = f"SELECT '{topic}', {kind}, {channel}, {status}, count(*) FROM {table}"  # noqa: S608
        op.execute(
            "INSERT INTO tallies (topic, kind, channel, status, n) "
            + select_counts
            + " GROUP BY 2, 3, 4"
        )


def _backfill_address_keys() -> None:
    """Mailbox keys of existing channels (people, not messages: a short pass)."""
    bind = op.get_bind()
    channels = sa.table(
        "channels",
        sa.column("id", BigId),
        sa.column("kind", sa.String),
        sa.column("address", sa.String),
        sa.column("address_key", sa.String),
    )
    last_id = 0
    while True:
        rows = bind.execute(
            sa.select(channels.c.id, channels.c.kind, channels.c.address)
            .where(channels.c.id > last_id)
            .order_by(channels.c.id)
            .limit(BACKFILL_BATCH)
        ).all()
        if not rows:
            return
        for channel_id, kind, address in rows:
            bind.execute(
                channels.update()
                .where(channels.c.id == channel_id)
                .values(address_key=mailbox_key(kind, address))
            )
        last_id = rows[-1][0]


def upgrade() -> None:
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.add_column(sa.Column("address_key", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("joined_from_id", BigId, nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_channels_joined_from_id_channels"),
            "channels",
            ["joined_from_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_index("ix_channels_kind_address_key", ["kind", "address_key"])
    _backfill_address_keys()

    op.create_table(
        "admin_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("token_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_admin_sessions")),
    )
    op.create_index("ix_admin_sessions_expires_at", "admin_sessions", ["expires_at"])

    op.create_table(
        "tallies",
        sa.Column("topic", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("topic", "kind", "channel", "status", name=op.f("pk_tallies")),
    )
    op.create_table(
        "tally_deltas",
        sa.Column("id", BigId, nullable=False),
        sa.Column("topic", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tally_deltas")),
    )
    create_tally_triggers()
    _backfill_tallies()


def downgrade() -> None:
    drop_tally_triggers()
    op.drop_table("tally_deltas")
    op.drop_table("tallies")
    op.drop_index("ix_admin_sessions_expires_at", table_name="admin_sessions")
    op.drop_table("admin_sessions")
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.drop_index("ix_channels_kind_address_key")
        batch_op.drop_constraint(
            batch_op.f("fk_channels_joined_from_id_channels"), type_="foreignkey"
        )
        batch_op.drop_column("joined_from_id")
        batch_op.drop_column("address_key")
