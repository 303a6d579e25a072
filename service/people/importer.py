"""`steady subscribers import`: a CSV of people, thousands of rows a second.

The file is read row by row and validated in order (service.people.import_rows), so
every bad row is named with its line as soon as it is read. Good rows are written in
batches of `IMPORT_BATCH_ROWS`:
one query finds which addresses Steady already knows, one which are suppressed, then
the batch's subscribers, channels and confirmation requests go in with COPY on
PostgreSQL (batched INSERTs on SQLite), one transaction per batch. Memory stays flat
however long the file.

The rules are those of a signup (service.people.subscriptions): a known address is left
as it is, a suppressed one is never brought back, a new one gets the double opt-in
(pending, a confirmation queued) unless the row carries consent evidence, which makes
it active at once. If the database refuses a batch as a whole (a signup took one of
its addresses in the meantime, say), that batch is done again row by row, each row in
its own SAVEPOINT, and only the rows that fail are named.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, cast

from sqlalchemy import Table, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.addresses import AddressHasher, mailbox_key
from service.channels import ChannelKind
from service.messages.catalog import CONFIRM_TEMPLATE, Kind
from service.messages.lifecycle import PRIORITY_NOW
from service.people import do_not_contact, subscriptions
from service.people.import_rows import (
    RowError,
    ValidRow,
    default_workers,
    read_header,
    validated_rows,
)
from service.storage.bulkwrite import insert_rows, one_of
from service.storage.models import (
    Channel,
    ChannelStatus,
    Message,
    Subscriber,
    Suppression,
)

IMPORT_BATCH_ROWS = 5000  # rows per transaction: few round trips, little lost to a crash
CONSENT_IMPORT = "import"  # the person still confirms (double opt-in)
CONSENT_IMPORT_WITH_EVIDENCE = "import_with_evidence"  # consent proven elsewhere: active at once


@dataclass
class ImportReport:
    rows: int = 0
    imported: int = 0  # rows that created at least one channel
    pending: int = 0  # channels waiting for the person's confirmation
    active: int = 0  # channels active at once (consent evidence on the row)
    skipped: int = 0  # rows whose addresses were all known or suppressed already
    errors: list[RowError] = field(default_factory=list)


@dataclass(frozen=True)
class ImportContext:
    hasher: AddressHasher
    default_timezone: str
    cadence_per_week: int
    now: datetime
    source: str

    at: str = field(init=False)  # `now` in ISO-8601, written once, not per row
    confirm_evidence: dict[str, str] = field(
        init=False, default_factory=lambda: {"method": CONSENT_IMPORT_WITH_EVIDENCE}
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", self.now.isoformat())

    def evidence(self, line: int) -> dict[str, Any]:
        return {"source": "csv_import", "file": self.source, "line": line, "imported_at": self.at}


def import_subscribers(
    sessions: sessionmaker[Session],
    handle: IO[str],
    *,
    hasher: AddressHasher,
    default_timezone: str,
    cadence_per_week: int,
    now: datetime,
    source: str,
    on_row: Callable[[int], None] = lambda _line: None,
    on_error: Callable[[RowError], None] = lambda _error: None,
) -> ImportReport:
    """Import a CSV (`phone,email,timezone[,consent_evidence]`) read from `handle`.

    `on_row(line)` reports progress after each batch; `on_error` each bad row at once.
    """
    context = ImportContext(hasher, default_timezone, cadence_per_week, now, source)
    report = ImportReport()
    batch: list[tuple[int, ValidRow]] = []
    reader = read_header(handle)
    for line, result in validated_rows(reader, default_timezone, default_workers()):
        report.rows += 1
        if isinstance(result, RowError):
            report.errors.append(result)
            on_error(result)
            continue
        batch.append((line, result))
        if len(batch) >= IMPORT_BATCH_ROWS:
            _write_batch(sessions, batch, context, report, on_error)
            on_row(line)
            batch = []
    _write_batch(sessions, batch, context, report, on_error)
    on_row(report.rows + 1)
    return report


# --- one batch ---------------------------------------------------------------------


# Columns a batch fills row by row, in this order; the rest are the batch's own
# (`_same`) or the tables' defaults.
SUBSCRIBER_COLUMNS = ("timezone", "timezone_candidates", "next_plan_at")
CHANNEL_COLUMNS = (
    "subscriber_id",
    "kind",
    "address",
    "address_key",  # COPY applies no column defaults: the mailbox key lookups use (issue 11)
    "status",
    "consent_method",
    "consent_evidence",
    "confirmed_at",
    "confirm_evidence",
)
MESSAGE_COLUMNS = ("subscriber_id", "channel_id", "channel")
_SMS, _EMAIL = ChannelKind.SMS.value, ChannelKind.EMAIL.value
_PENDING, _ACTIVE = ChannelStatus.PENDING.value, ChannelStatus.ACTIVE.value


@dataclass
class _Batch:
    """What one batch writes, before it has ids: rows of values, in the columns' order."""

    subscribers: list[tuple[Any, ...]] = field(default_factory=list)
    # (index into subscribers, the channel's values after subscriber_id), in order
    channels: list[tuple[int, tuple[Any, ...]]] = field(default_factory=list)
    imported: int = 0
    pending: int = 0
    active: int = 0
    skipped: int = 0


def _write_batch(
    sessions: sessionmaker[Session],
    batch: list[tuple[int, ValidRow]],
    context: ImportContext,
    report: ImportReport,
    on_error: Callable[[RowError], None],
) -> None:
    if not batch:
        return
    try:
        with sessions.begin() as session:
            planned = _plan(session, batch, context)
            _insert(session, planned, context)
    except SQLAlchemyError:
        _write_row_by_row(sessions, batch, context, report, on_error)
        return
    report.imported += planned.imported
    report.pending += planned.pending
    report.active += planned.active
    report.skipped += planned.skipped


def _plan(session: Session, batch: list[tuple[int, ValidRow]], context: ImportContext) -> _Batch:
    """Decide, row by row in file order, what each row adds (the rules of `subscribe`)."""
    addresses = {
        _SMS: {row.phone for _, row in batch if row.phone is not None},
        _EMAIL: {row.email for _, row in batch if row.email is not None},
    }
    taken: set[tuple[str, str]] = set()
    for kind, wanted in addresses.items():
        if wanted:
            taken.update(
                (kind, address)
                for address in session.scalars(
                    select(Channel.address).where(
                        Channel.kind == kind, one_of(session, Channel.address, wanted)
                    )
                )
            )
    hashes = {
        context.hasher(address): address
        for kind, wanted in addresses.items()
        for address in wanted
        if (kind, address) not in taken
    }
    suppressed = {
        hashes[digest]
        for digest in (
            session.scalars(
                select(Suppression.address_hash).where(
                    one_of(session, Suppression.address_hash, hashes)
                )
            )
            if hashes
            else []
        )
    }
    planned = _Batch()
    for line, row in batch:
        fresh = []
        for kind, address in ((_SMS, row.phone), (_EMAIL, row.email)):
            if address is None or (kind, address) in taken or address in suppressed:
                continue
            taken.add((kind, address))  # a later row with it finds it known, as in a signup
            fresh.append((kind, address))
        if not fresh:
            planned.skipped += 1
            continue
        planned.imported += 1
        _add_person(planned, line, row, fresh, context)
    return planned


def _add_person(
    planned: _Batch,
    line: int,
    row: ValidRow,
    fresh: list[tuple[str, str]],
    context: ImportContext,
) -> None:
    active = row.evidence is not None
    person = (row.timezone, row.timezone_candidates, context.now if active else None)
    planned.subscribers.append(person)
    index = len(planned.subscribers) - 1
    for number, (kind, address) in enumerate(fresh):
        if number and not active:
            # A phone and an email on one row are two people until one of them proves
            # both (issue 11); consent evidence on the row is the operator's proof.
            planned.subscribers.append(person)
            index += 1
        consent: tuple[Any, ...]  # status, consent_method, …, confirm_evidence
        if active:
            evidence = {**context.evidence(line), "evidence": row.evidence}
            consent = (_ACTIVE, CONSENT_IMPORT_WITH_EVIDENCE, evidence, context.now)
            consent += (context.confirm_evidence,)
            planned.active += 1
        else:
            consent = (_PENDING, CONSENT_IMPORT, context.evidence(line), None, None)
            planned.pending += 1
        planned.channels.append((index, (kind, address, mailbox_key(kind, address), *consent)))


def _same(context: ImportContext) -> dict[str, dict[str, Any]]:
    """What every subscriber, channel and confirmation of an import has in common."""
    now = context.now
    return {
        "subscribers": {"cadence_per_week": context.cadence_per_week, "created_at": now},
        "channels": {"created_at": now, "updated_at": now, "consent_at": now},
        "messages": {
            "kind": Kind.CONFIRM.value,
            "template": CONFIRM_TEMPLATE,
            "rule": "double_opt_in",
            "priority": PRIORITY_NOW,
            "scheduled_for": now,
            "created_at": now,
            "updated_at": now,
        },
    }


def _insert(session: Session, planned: _Batch, context: ImportContext) -> None:
    same = _same(context)
    subscriber_ids = insert_rows(
        session, _table(Subscriber), SUBSCRIBER_COLUMNS, planned.subscribers, same["subscribers"]
    )
    channel_rows = [(subscriber_ids[index], *channel) for index, channel in planned.channels]
    channel_ids = insert_rows(
        session, _table(Channel), CHANNEL_COLUMNS, channel_rows, same["channels"]
    )
    person, kind, status = (CHANNEL_COLUMNS.index(c) for c in ("subscriber_id", "kind", "status"))
    confirmations = [  # MESSAGE_COLUMNS: one for each pending channel
        (channel[person], channel_id, channel[kind])
        for channel_id, channel in zip(channel_ids, channel_rows, strict=True)
        if channel[status] == _PENDING
    ]
    insert_rows(
        session, _table(Message), MESSAGE_COLUMNS, confirmations, same["messages"], ids=False
    )


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


# --- the slow path: row by row, each in its own SAVEPOINT ----------------------------


def _write_row_by_row(
    sessions: sessionmaker[Session],
    batch: list[tuple[int, ValidRow]],
    context: ImportContext,
    report: ImportReport,
    on_error: Callable[[RowError], None],
) -> None:
    with sessions.begin() as session:
        for line, row in batch:
            error = _import_one(session, line, row, context, report)
            if error is not None:
                report.errors.append(error)
                on_error(error)


def _import_one(
    session: Session, line: int, row: ValidRow, context: ImportContext, report: ImportReport
) -> RowError | None:
    try:
        with session.begin_nested():
            phone, email = _new_addresses(session, row, context.hasher)
            created = 0
            if phone is not None or email is not None:
                planned = _Batch()
                fresh = [
                    (kind, address)
                    for kind, address in ((_SMS, phone), (_EMAIL, email))
                    if address is not None
                ]
                _add_person(planned, line, row, fresh, context)
                _insert_one(session, planned, context)
                created = planned.pending + planned.active
                report.pending += planned.pending
                report.active += planned.active
    except Exception as exc:  # any failure rejects this row only: the savepoint undid it
        return RowError(line, "row", f"not imported ({type(exc).__name__}: {exc})"[:300])
    if created:
        report.imported += 1
    else:
        report.skipped += 1
    return None


def _insert_one(session: Session, planned: _Batch, context: ImportContext) -> None:
    """One person through the ORM and `subscriptions.queue_confirmation`."""
    same = _same(context)
    subscriber = Subscriber(
        **dict(zip(SUBSCRIBER_COLUMNS, planned.subscribers[0], strict=True)),
        **same["subscribers"],
    )
    session.add(subscriber)
    for _, channel in planned.channels:
        values = dict(zip(CHANNEL_COLUMNS[1:], channel, strict=True))
        subscriber.channels.append(Channel(**values, **same["channels"]))
    session.flush()
    for channel_row in subscriber.channels:
        if channel_row.status == ChannelStatus.PENDING:
            subscriptions.queue_confirmation(session, channel_row, context.now)
    session.flush()


def _new_addresses(
    session: Session, row: ValidRow, hasher: AddressHasher
) -> tuple[str | None, str | None]:
    """The row's addresses Steady has never seen and is free to contact."""
    fresh: list[str | None] = []
    for kind, address in ((ChannelKind.SMS, row.phone), (ChannelKind.EMAIL, row.email)):
        known = address is not None and (
            session.scalar(
                select(Channel.id).where(Channel.kind == kind, Channel.address == address)
            )
            is not None
            or do_not_contact.is_suppressed(session, address, hasher)
        )
        fresh.append(None if known else address)
    return fresh[0], fresh[1]
