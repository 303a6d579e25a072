"""Operator work on subscribers: bulk import, export and erasure (INTERFACE.md §4).

Each function takes a session factory and plain values and returns what it did, so
`steady subscribers …` (service.cli.ops) only parses arguments and prints. The import
itself lives in service.people.importer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, aliased, sessionmaker

from service.addresses import AddressHasher
from service.channels import ChannelKind
from service.people import do_not_contact
from service.storage.models import (
    ActivityLog,
    Channel,
    ContactLog,
    DeliveryEvent,
    InboundMessage,
    Message,
    Subscriber,
)

EXPORT_YIELD_PER = 1000  # rows fetched per round trip while streaming an export
EXPORT_COLUMNS = (
    "id",
    "phone",
    "email",
    "timezone",
    "status_sms",
    "status_email",
    "created_at",
)
ERASURE_REASON = "erased"


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
            do_not_contact.suppress(
                session, channel_address, channel_kind, ERASURE_REASON, hasher, now
            )
    return ErasureReport(subscriber_id=subscriber_id, removed=removed, suppressed=len(channels))


def _count_deleted(session: Session, statement: Any) -> int:
    result = session.execute(statement.execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)
