"""Running counts of messages and delivery events, read in constant time (issue 11).

`/metrics` is scraped every 15 s and the admin figures load with the dashboard;
counting the messages table for them grew with it (x6 from 10k to 100k rows).
Database triggers (migration 0006) keep the counts instead, whatever writes the
rows: the planner's COPY, the dispatcher's bulk claims, a webhook, a cascade
delete. Nothing in Python has to remember to count.

On PostgreSQL every statement appends its net change per key to `tally_deltas`
(inserts only: concurrent senders never queue on one counter row). A reader
adds the pending deltas to the totals (right on a read-only replica too), and
`fold` moves them into `tallies` on every planner pass (`Runtime.plan`), one
folder at a time (an advisory lock), so the deltas stay as few as the changes
of one pass. SQLite has one writer at a time and its triggers add to `tallies`
directly.
"""

from __future__ import annotations

from sqlalchemy import func, literal_column, select, text, union_all
from sqlalchemy.orm import Session

from service.storage.models_records import Tally, TallyDelta

MESSAGES = "messages"
DELIVERY_EVENTS = "delivery_events"
# pg_try_advisory_xact_lock key: one folder at a time ("tally" in ASCII).
FOLD_LOCK_KEY = 0x74616C6C79

FOLD_POSTGRES = text(
    """
    WITH moved AS (DELETE FROM tally_deltas RETURNING topic, kind, channel, status, n)
    INSERT INTO tallies (topic, kind, channel, status, n)
    SELECT topic, kind, channel, status, sum(n) FROM moved
    GROUP BY topic, kind, channel, status
    ORDER BY topic, kind, channel, status
    ON CONFLICT (topic, kind, channel, status) DO UPDATE SET n = tallies.n + excluded.n
    """
)


def fold(session: Session) -> None:
    """Move pending deltas into the totals (PostgreSQL; SQLite has none). Commit after."""
    if session.get_bind().dialect.name != "postgresql":
        return
    if session.scalar(select(func.pg_try_advisory_xact_lock(FOLD_LOCK_KEY))):
        session.execute(FOLD_POSTGRES)


def counts(session: Session, topic: str) -> list[tuple[str, str, str, int]]:
    """(kind, channel, status, count) of one topic, zero counts left out.

    Reads the totals plus the deltas not folded yet: right on a read-only
    replica too, where nothing can be folded.
    """
    rows = union_all(
        select(Tally.kind, Tally.channel, Tally.status, Tally.n).where(Tally.topic == topic),
        select(TallyDelta.kind, TallyDelta.channel, TallyDelta.status, TallyDelta.n).where(
            TallyDelta.topic == topic
        ),
    ).subquery()
    total = func.sum(rows.c.n)
    result = session.execute(
        select(rows.c.kind, rows.c.channel, rows.c.status, total)
        .group_by(rows.c.kind, rows.c.channel, rows.c.status)
        .having(total != literal_column("0"))
    )
    return [(kind, channel, status, int(count)) for kind, channel, status, count in result]


def message_counts(session: Session) -> list[tuple[str, str, str, int]]:
    """(kind, channel, status, count) of the messages table."""
    return counts(session, MESSAGES)


def delivery_event_counts(session: Session) -> dict[str, int]:
    """Delivery events by type."""
    totals: dict[str, int] = {}
    for _kind, _channel, event_type, count in counts(session, DELIVERY_EVENTS):
        totals[event_type] = totals.get(event_type, 0) + count
    return totals
