"""Operator work on subscribers: bulk import, export and erasure (INTERFACE.md §4).

Each function takes a session factory and plain values and returns what it did, so
`steady subscribers …` (service.cli.ops) only parses arguments and prints.

Import is streamed: the CSV is read row by row, every row runs in its own SAVEPOINT
(a row that fails half-way leaves nothing behind) and the batch commits every
`IMPORT_BATCH_ROWS` rows, so a million-row file needs no more memory than a small one.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, aliased, sessionmaker

from service.addresses import (
    AddressHasher,
    InvalidAddress,
    check_timezone,
    infer_timezone,
    normalise_email,
    normalise_phone,
)
from service.channels import ChannelKind
from service.people import subscriptions
from service.storage.models import (
    ActivityLog,
    Channel,
    ChannelStatus,
    ContactLog,
    DeliveryEvent,
    InboundMessage,
    Message,
    Subscriber,
)

IMPORT_BATCH_ROWS = 500  # rows per commit: big enough to be fast, small enough to lose little
EXPORT_YIELD_PER = 1000  # rows fetched per round trip while streaming an export
IMPORT_COLUMNS = ("phone", "email", "timezone")
OPTIONAL_IMPORT_COLUMNS = ("consent_evidence",)
EXPORT_COLUMNS = (
    "id",
    "phone",
    "email",
    "timezone",
    "status_sms",
    "status_email",
    "created_at",
)
CONSENT_IMPORT = "import"  # the person still confirms (double opt-in)
CONSENT_IMPORT_WITH_EVIDENCE = "import_with_evidence"  # consent proven elsewhere: active at once
ERASURE_REASON = "erased"


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (no header, wrong columns)."""


@dataclass(frozen=True)
class RowError:
    """One rejected row: its line in the file, the field at fault and why."""

    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}"


@dataclass
class ImportReport:
    rows: int = 0
    imported: int = 0  # rows that created or refreshed at least one channel
    pending: int = 0  # channels waiting for the person's confirmation
    active: int = 0  # channels active at once (consent evidence on the row)
    skipped: int = 0  # rows whose addresses were all known or suppressed already
    errors: list[RowError] = field(default_factory=list)


@dataclass(frozen=True)
class ValidRow:
    phone: str | None
    email: str | None
    timezone: str
    evidence: str | None


def validate_row(row: dict[str, str | None], line: int, default_timezone: str) -> ValidRow:
    """Normalise one CSV row or raise `InvalidAddress` naming the field at fault."""
    values = {key: (value or "").strip() for key, value in row.items() if key is not None}
    if not any(values.values()):
        raise InvalidAddress("row", "empty row")
    if not values.get("phone") and not values.get("email"):
        raise InvalidAddress("row", "neither phone nor email given")
    phone = normalise_phone(values["phone"]) if values.get("phone") else None
    email = normalise_email(values["email"]) if values.get("email") else None
    if values.get("timezone"):
        timezone = check_timezone(values["timezone"])
    else:
        timezone = (infer_timezone(phone) if phone else None) or default_timezone
    return ValidRow(phone, email, timezone, values.get("consent_evidence") or None)


def count_data_lines(path: str) -> int:
    """Lines after the header, counted without holding the file (for the progress bar)."""
    with open(path, "rb") as handle:
        return max(sum(1 for _ in handle) - 1, 0)


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
    """Import a CSV (`phone,email,timezone[,consent_evidence]`) read from `handle`."""
    reader = csv.DictReader(handle)
    header = [name.strip() for name in (reader.fieldnames or [])]
    missing = [name for name in IMPORT_COLUMNS if name not in header]
    unknown = [n for n in header if n not in (*IMPORT_COLUMNS, *OPTIONAL_IMPORT_COLUMNS)]
    if not header or missing or unknown:
        raise ImportFileError(
            "the first line must be the header phone,email,timezone[,consent_evidence]"
            + (f" (missing: {', '.join(missing)})" if missing else "")
            + (f" (unknown: {', '.join(unknown)})" if unknown else "")
        )
    reader.fieldnames = header
    report = ImportReport()
    session = sessions()
    try:
        for raw in reader:
            line = reader.line_num
            report.rows += 1
            error = _import_one(
                session, raw, line, report, hasher, default_timezone, cadence_per_week, now, source
            )
            if error is not None:
                report.errors.append(error)
                on_error(error)
            if report.rows % IMPORT_BATCH_ROWS == 0:
                session.commit()
                session.expunge_all()  # keep memory flat: nothing from the last batch is needed
            on_row(line)
        session.commit()
    finally:
        session.close()
    return report


def _import_one(
    session: Session,
    raw: dict[str, Any],
    line: int,
    report: ImportReport,
    hasher: AddressHasher,
    default_timezone: str,
    cadence_per_week: int,
    now: datetime,
    source: str,
) -> RowError | None:
    if None in raw:  # DictReader puts surplus cells under the key None
        return RowError(line, "row", "more cells than the header has columns")
    try:
        row = validate_row(raw, line, default_timezone)
    except InvalidAddress as exc:
        return RowError(line, exc.field, exc.message)
    evidence = {
        "source": "csv_import",
        "file": source,
        "line": line,
        "imported_at": now.isoformat(),
    }
    try:
        with session.begin_nested():
            phone, email = _new_addresses(session, row, hasher)
            if phone is None and email is None:
                created = 0
            elif row.evidence is None:
                confirmations = subscriptions.subscribe(
                    session,
                    subscriptions.SignupRequest(
                        phone=phone,
                        email=email,
                        timezone=row.timezone,
                        consent_method=CONSENT_IMPORT,
                        consent_evidence=evidence,
                        cadence_per_week=cadence_per_week,
                    ),
                    hasher,
                    now,
                )
                created = len(confirmations)
                report.pending += created
            else:
                created = _import_with_evidence(
                    session,
                    (phone, email),
                    row.timezone,
                    {**evidence, "evidence": row.evidence},
                    cadence_per_week,
                    now,
                )
                report.active += created
    except Exception as exc:  # any failure rejects this row only: the savepoint undid it
        return RowError(line, "row", f"not imported ({type(exc).__name__}: {exc})"[:300])
    if created:
        report.imported += 1
    else:
        report.skipped += 1
    return None


def _new_addresses(
    session: Session, row: ValidRow, hasher: AddressHasher
) -> tuple[str | None, str | None]:
    """The row's addresses Steady has never seen and is free to contact.

    Known addresses are left exactly as they are (a stopped one is not re-asked for
    consent, a pending one gets no second request) and suppressed ones (STOP,
    erasure) are never brought back by an import: only the person can do that.
    """
    fresh: list[str | None] = []
    for kind, address in ((ChannelKind.SMS, row.phone), (ChannelKind.EMAIL, row.email)):
        known = address is not None and (
            session.scalar(
                select(Channel.id).where(Channel.kind == kind, Channel.address == address)
            )
            is not None
            or subscriptions.is_suppressed(session, address, hasher)
        )
        fresh.append(None if known else address)
    return fresh[0], fresh[1]


def _import_with_evidence(
    session: Session,
    addresses: tuple[str | None, str | None],
    timezone: str,
    evidence: dict[str, Any],
    cadence_per_week: int,
    now: datetime,
) -> int:
    """Create the person with active channels: consent was proven outside Steady."""
    subscriber = Subscriber(
        timezone=timezone, cadence_per_week=cadence_per_week, created_at=now, next_plan_at=now
    )
    for kind, address in zip((ChannelKind.SMS, ChannelKind.EMAIL), addresses, strict=True):
        if address is None:
            continue
        subscriber.channels.append(
            Channel(
                kind=kind,
                address=address,
                status=ChannelStatus.ACTIVE,
                created_at=now,
                updated_at=now,
                consent_at=now,
                consent_method=CONSENT_IMPORT_WITH_EVIDENCE,
                consent_evidence=evidence,
                confirmed_at=now,
                confirm_evidence={"method": CONSENT_IMPORT_WITH_EVIDENCE},
            )
        )
    session.add(subscriber)
    session.flush()
    return len(subscriber.channels)


def export_rows(sessions: sessionmaker[Session]) -> Iterator[dict[str, Any]]:
    """Every subscriber as one flat row (EXPORT_COLUMNS), oldest first, streamed."""
    sms = aliased(Channel)
    email = aliased(Channel)
    statement = (
        select(
            Subscriber.id,
            sms.address,
            email.address,
            Subscriber.timezone,
            sms.status,
            email.status,
            Subscriber.created_at,
        )
        .outerjoin(sms, (sms.subscriber_id == Subscriber.id) & (sms.kind == ChannelKind.SMS))
        .outerjoin(
            email, (email.subscriber_id == Subscriber.id) & (email.kind == ChannelKind.EMAIL)
        )
        .order_by(Subscriber.id)
        .execution_options(yield_per=EXPORT_YIELD_PER)
    )
    with sessions() as session:
        for row in session.execute(statement):
            *values, created_at = row
            yield dict(zip(EXPORT_COLUMNS, [*values, created_at.isoformat()], strict=True))


@dataclass(frozen=True)
class ErasureReport:
    subscriber_id: int
    removed: dict[str, int]
    suppressed: int


def erase_person(
    sessions: sessionmaker[Session],
    kind: str,
    address: str,
    *,
    hasher: AddressHasher,
    now: datetime,
) -> ErasureReport | None:
    """Delete the person owning `address` and all of theirs; keep hashed suppressions.

    Returns None when no one has that address. Deletes are explicit (not left to
    the foreign keys' cascades) so every count is known and delivery reports,
    whose raw payloads carry the address, go too.
    """
    with sessions.begin() as session:
        subscriber_id = session.scalar(
            select(Channel.subscriber_id).where(Channel.kind == kind, Channel.address == address)
        )
        if subscriber_id is None:
            return None
        channels = session.execute(
            select(Channel.kind, Channel.address).where(Channel.subscriber_id == subscriber_id)
        ).all()
        message_ids = select(Message.id).where(Message.subscriber_id == subscriber_id)
        removed: dict[str, int] = {}
        for name, statement in (
            (
                "delivery_events",
                delete(DeliveryEvent).where(DeliveryEvent.message_id.in_(message_ids)),
            ),
            ("contact_logs", delete(ContactLog).where(ContactLog.subscriber_id == subscriber_id)),
            (
                "activity_logs",
                delete(ActivityLog).where(ActivityLog.subscriber_id == subscriber_id),
            ),
            (
                "inbound_messages",
                delete(InboundMessage).where(InboundMessage.subscriber_id == subscriber_id),
            ),
            ("messages", delete(Message).where(Message.subscriber_id == subscriber_id)),
            ("channels", delete(Channel).where(Channel.subscriber_id == subscriber_id)),
            ("subscribers", delete(Subscriber).where(Subscriber.id == subscriber_id)),
        ):
            removed[name] = _count_deleted(session, statement)
        for channel_kind, channel_address in channels:
            subscriptions.suppress(
                session, channel_address, channel_kind, ERASURE_REASON, hasher, now
            )
    return ErasureReport(subscriber_id=subscriber_id, removed=removed, suppressed=len(channels))


def _count_deleted(session: Session, statement: Any) -> int:
    result = session.execute(statement.execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)
