"""Settling an `unknown` message once its provider has answered (or could not).

Every change is conditional on the row being still `unknown` and still held by
this reconciler (`lease_until`): a status callback that came meanwhile wins, and
the outcome is then `raced`. A nudge settled for good lets the planner choose
the person's next one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.addresses import AddressHasher
from service.channels import ChannelKind
from service.messages.compose import Recipient
from service.messages.lifecycle import MAX_SEND_ATTEMPTS, PRIORITY_NUDGE
from service.providers.base import AcceptedCopy, Provider
from service.sending.claims import RECIPIENT_COLUMNS, recipient_of
from service.sending.feedback import apply_send_errors
from service.storage.models import Channel, Message, MessageStatus, Subscriber

# Settled outcomes besides the copy's own status.
RESENT = "resent"
SUPERSEDED = "superseded"
NOT_ACCEPTED = "not_accepted"
RACED = "raced"  # a status callback (or another reconciler) settled it first


@dataclass(frozen=True)
class UnknownRow:
    """A claimed `unknown` message, with what asking and settling it need."""

    id: int
    subscriber_id: int | None
    channel: ChannelKind
    kind: str
    template: str
    priority: int
    attempts: int
    scheduled_for: datetime
    expires_at: datetime | None
    updated_at: datetime
    lease_until: datetime
    provider_id: str | None
    sent_at: datetime | None
    recipient: Recipient | None

    @property
    def is_nudge(self) -> bool:
        # Confirmations and replies answer something the person did: never superseded.
        return self.priority == PRIORITY_NUDGE


def load_unknown(session: Session, ids: list[int]) -> list[UnknownRow]:
    rows = session.execute(
        select(
            *RECIPIENT_COLUMNS,
            Message.subscriber_id,
            Message.template,
            Message.priority,
            Message.attempts,
            Message.scheduled_for,
            Message.expires_at,
            Message.updated_at,
            Message.lease_until,
            Message.provider_id,
            Message.sent_at,
        )
        .outerjoin(Channel, Channel.id == Message.channel_id)
        .outerjoin(Subscriber, Subscriber.id == Message.subscriber_id)
        .where(Message.id.in_(ids))
        .order_by(Message.priority, Message.updated_at, Message.id)
    ).all()
    return [_row(row) for row in rows]


def _row(row: Any) -> UnknownRow:
    return UnknownRow(
        id=row.id,
        subscriber_id=row.subscriber_id,
        channel=row.channel,
        # A message whose channel is gone (erased) has no one to send to.
        recipient=recipient_of(row) if row.channel_id and row.address else None,
        kind=row.kind,
        template=row.template,
        priority=row.priority,
        attempts=row.attempts,
        scheduled_for=row.scheduled_for,
        expires_at=row.expires_at,
        updated_at=row.updated_at,
        lease_until=row.lease_until,
        provider_id=row.provider_id,
        sent_at=row.sent_at,
    )


def settle_found(
    session: Session,
    row: UnknownRow,
    copy: AcceptedCopy,
    now: datetime,
    provider: Provider | None,
    hasher: AddressHasher,
) -> str:
    # `sent`, and the provider's own callbacks and events move it on from there
    # (had they come while it was unknown, they would have settled it already). A
    # failure the provider reports is kept with its code: it feeds suppression.
    status = {
        "undelivered": MessageStatus.UNDELIVERED,
        "failed": MessageStatus.FAILED,
    }.get(copy.outcome, MessageStatus.SENT)
    sent_at = min(copy.accepted_at, now) if copy.accepted_at is not None else row.updated_at
    values: dict[str, Any] = {"provider_id": copy.provider_id, "sent_at": sent_at}
    if provider is not None:
        values["provider"] = provider.name
    if copy.error_code:
        values["error_code"] = copy.error_code
    if not _update(session, row, now, status=status, **values):
        return RACED
    if status == MessageStatus.FAILED and copy.cause:
        # The same feedback a failed callback gives (STOP, unreachable number, ...).
        apply_send_errors(session, [(row.id, copy.cause)], hasher, now)
    _replan(session, row, now)
    return str(status)


def settle_not_found(session: Session, row: UnknownRow, now: datetime) -> str:
    """The provider never took it: send it again if that is still right."""
    if row.expires_at is not None and row.expires_at <= now:
        return settle_as(
            session,
            row,
            now,
            MessageStatus.EXPIRED,
            NOT_ACCEPTED,
            "not accepted by the provider; its window has passed",
        )
    if row.is_nudge and _superseded(session, row):
        return settle_as(
            session,
            row,
            now,
            MessageStatus.CANCELLED,
            SUPERSEDED,
            "not accepted by the provider; a newer nudge replaced it",
        )
    if row.attempts >= MAX_SEND_ATTEMPTS:
        return settle_as(
            session,
            row,
            now,
            MessageStatus.FAILED,
            NOT_ACCEPTED,
            "not accepted by the provider; retries exhausted",
        )
    if not _update(
        session,
        row,
        now,
        status=MessageStatus.SCHEDULED,
        scheduled_for=now,
        error_detail="not accepted by the provider; sent again",
    ):
        return RACED
    return RESENT


def settle_as(
    session: Session, row: UnknownRow, now: datetime, status: str, code: str, detail: str
) -> str:
    if not _update(session, row, now, status=status, error_code=code, error_detail=detail):
        return RACED
    _replan(session, row, now)
    return str(status)


def _superseded(session: Session, row: UnknownRow) -> bool:
    """A newer nudge for the same person exists: the planner has moved on without this one."""
    if row.subscriber_id is None:
        return False
    newer = session.scalar(
        select(Message.id)
        .where(
            Message.subscriber_id == row.subscriber_id,
            Message.priority == PRIORITY_NUDGE,
            Message.id > row.id,
        )
        .limit(1)
    )
    return newer is not None


def _update(session: Session, row: UnknownRow, now: datetime, **values: Any) -> bool:
    """Apply `values` if the row is still unknown and still ours; False if not."""
    changed = session.scalar(
        update(Message)
        .where(
            Message.id == row.id,
            Message.status == MessageStatus.UNKNOWN,
            Message.lease_until == row.lease_until,
        )
        .values(**values, lease_until=None, updated_at=now)
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    )
    return changed is not None


def leave_unknown(session: Session, row: UnknownRow, retry_at: datetime) -> None:
    """Keep it unknown; ask again no sooner than `retry_at` (a down provider is not hammered)."""
    session.execute(
        update(Message)
        .where(
            Message.id == row.id,
            Message.status == MessageStatus.UNKNOWN,
            Message.lease_until == row.lease_until,
        )
        .values(lease_until=retry_at, updated_at=Message.updated_at)
        .execution_options(synchronize_session=False)
    )


def _replan(session: Session, row: UnknownRow, now: datetime) -> None:
    """A nudge settled for good: the planner may choose the person's next one."""
    if not row.is_nudge or row.subscriber_id is None:
        return
    session.execute(
        update(Subscriber)
        .where(Subscriber.id == row.subscriber_id, Subscriber.flagged_at.is_(None))
        .values(next_plan_at=now)
        .execution_options(synchronize_session=False)
    )
