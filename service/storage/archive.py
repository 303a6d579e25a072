"""`steady archive`: move old messages and their delivery events out of the live tables.

The live tables are what every tick reads and writes; left alone they grow forever, and
so do their indexes and the dispatcher's claim. Rows older than the retention
(STEADY_RETENTION_DAYS, or `--before`) move to `messages_archive` and
`delivery_events_archive`: INSERT … SELECT then DELETE, a batch per transaction, so
locks stay short and the work can stop and resume anywhere. Messages still in flight
(scheduled, sending, unknown) are never moved, whatever their age.

The other way, monthly partitions of `messages` on PostgreSQL (dropping or detaching a
month instead of deleting rows), is described in docs/operators.md: cheaper per row, but
every index and the claim would have to span the partitions, and SQLite has none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, delete, insert, literal, select
from sqlalchemy.orm import Session, sessionmaker

from service.storage.bulkwrite import is_postgresql, one_of
from service.storage.models import DeliveryEvent, Message, MessageStatus
from service.storage.models_records import DeliveryEventArchive, MessageArchive

ARCHIVE_BATCH_ROWS = 5000
# Pacing looks back 14 days (template repeats, one-sidedness); reports a month.
MIN_RETENTION = timedelta(days=30)
# Never moved: the dispatcher, the lease sweep or reconciliation still owns them.
IN_FLIGHT = (MessageStatus.SCHEDULED, MessageStatus.SENDING, MessageStatus.UNKNOWN)


class RetentionTooShort(ValueError):
    """The cutoff is later than `MIN_RETENTION` ago."""


@dataclass
class ArchiveReport:
    cutoff: datetime
    messages: int = 0
    delivery_events: int = 0
    batches: int = 0


def archive(
    sessions: sessionmaker[Session],
    cutoff: datetime,
    now: datetime,
    *,
    batch_size: int = ARCHIVE_BATCH_ROWS,
    on_batch: Callable[[ArchiveReport], None] = lambda _report: None,
) -> ArchiveReport:
    """Move what was created before `cutoff` (and is not in flight) to the archive."""
    if cutoff > now - MIN_RETENTION:
        raise RetentionTooShort(
            f"the cutoff must be at least {MIN_RETENTION.days} days ago (pacing reads "
            "the last two weeks of messages)"
        )
    report = ArchiveReport(cutoff=cutoff)
    while _archive_messages(sessions, cutoff, now, batch_size, report):
        on_batch(report)
    while _archive_orphan_events(sessions, cutoff, now, batch_size, report):
        on_batch(report)
    return report


def _archive_messages(
    sessions: sessionmaker[Session],
    cutoff: datetime,
    now: datetime,
    batch_size: int,
    report: ArchiveReport,
) -> bool:
    with sessions.begin() as session:
        query = (
            select(Message.id)
            .where(Message.created_at < cutoff, Message.status.not_in(IN_FLIGHT))
            .order_by(Message.created_at, Message.id)
            .limit(batch_size)
        )
        if is_postgresql(session):
            # A row a webhook is updating right now waits for the next run.
            query = query.with_for_update(skip_locked=True)
        ids = list(session.scalars(query))
        if not ids:
            return False
        report.delivery_events += _move(
            session, DeliveryEvent, DeliveryEventArchive, "message_id", ids, now
        )
        report.messages += _move(session, Message, MessageArchive, "id", ids, now)
    report.batches += 1
    return True


def _archive_orphan_events(
    sessions: sessionmaker[Session],
    cutoff: datetime,
    now: datetime,
    batch_size: int,
    report: ArchiveReport,
) -> bool:
    """Old delivery events of no message (reports on messages Steady never knew)."""
    with sessions.begin() as session:
        ids = list(
            session.scalars(
                select(DeliveryEvent.id)
                .where(DeliveryEvent.message_id.is_(None), DeliveryEvent.received_at < cutoff)
                .order_by(DeliveryEvent.id)
                .limit(batch_size)
            )
        )
        if not ids:
            return False
        report.delivery_events += _move(
            session, DeliveryEvent, DeliveryEventArchive, "id", ids, now
        )
    report.batches += 1
    return True


def _move(
    session: Session, live: type[Any], archived: type[Any], key: str, ids: list[int], now: datetime
) -> int:
    """INSERT … SELECT the rows whose `key` is in `ids`, then DELETE them; the count."""
    source, target = _table(live), _table(archived)
    columns = shared_columns(live, archived)
    where = one_of(session, source.c[key], ids)
    session.execute(
        insert(target).from_select(
            [*columns, "archived_at"],
            select(
                *[source.c[name] for name in columns], literal(now, target.c.archived_at.type)
            ).where(where),
        )
    )
    result = session.execute(delete(source).where(where))
    return int(getattr(result, "rowcount", 0) or 0)


def shared_columns(live: type[Any], archived: type[Any]) -> list[str]:
    """The columns both tables have: a column added to the live table alone is not
    copied (tests/storage/test_archive.py fails until the archive has it too)."""
    kept = {column.key for column in _table(archived).c}
    return [column.key for column in _table(live).c if column.key in kept]


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)
