"""The outbox rows' side of dispatch: claim due messages, write back what happened.

Every function here is a few set-based statements on `messages` (executemany
for per-row values), so a batch costs the same handful of round trips whatever
its size. The dispatcher (`service.sending.dispatch`) decides; this module records.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Table, and_, bindparam, case, or_, select, update
from sqlalchemy.orm import Session

from service.channels import ChannelKind
from service.messages.catalog import IMMEDIATE_KINDS
from service.messages.compose import Recipient, renders_discreet
from service.providers.base import Cause
from service.storage.models import Channel, Message, MessageStatus, Subscriber

messages_table = cast(Table, Message.__table__)

# What a `Recipient` is read from: a message joined to its channel and subscriber.
RECIPIENT_COLUMNS = (
    Message.id,
    Message.kind,
    Message.channel_id,
    Message.channel,
    Channel.address,
    Channel.consent_method,
    Subscriber.discreet,
    Subscriber.cadence_per_week,
)


def recipient_of(row: Any) -> Recipient:
    """The recipient a row selected with `RECIPIENT_COLUMNS` names.

    Discreet as the dispatcher renders it, so reconciliation finds the provider's
    copy by the very same body.
    """
    return Recipient(
        message_id=row.id,
        channel_id=row.channel_id,
        channel=row.channel,
        address=row.address,
        discreet=renders_discreet(row.kind, bool(row.discreet), row.consent_method),
        cadence_per_week=row.cadence_per_week,
    )


@dataclass(frozen=True)
class Outcome:
    """What became of one claimed message, as the bulk update writes it."""

    message_id: int
    subscriber_id: int | None
    channel: ChannelKind
    kind: str
    template: str
    rule: str
    status: str
    provider_id: str | None = None
    error_code: str | None = None
    detail: str | None = None
    retry_at: datetime | None = None
    at: datetime | None = None  # when the provider accepted it (UTC): the row's `sent_at`
    cause: Cause | None = None  # what a failure says about the address (not stored here)


def release_expired_leases(session: Session, now: datetime) -> int:
    """Rows stuck in `sending` past their lease become `unknown` (for reconciliation)."""
    rows = session.execute(
        update(Message)
        .where(Message.status == MessageStatus.SENDING, Message.lease_until < now)
        .values(status=MessageStatus.UNKNOWN, lease_until=None, updated_at=now)
        .returning(Message.subscriber_id, Message.kind)
        .execution_options(synchronize_session=False)
    ).all()
    replan_subscribers(session, [sid for sid, kind in rows if kind not in IMMEDIATE_KINDS], now)
    return len(rows)


def expire_overdue(session: Session, now: datetime) -> int:
    """Nudges that missed their window by more than the grace never go out late."""
    rows = session.execute(
        update(Message)
        .where(Message.status == MessageStatus.SCHEDULED, Message.expires_at < now)
        .values(status=MessageStatus.EXPIRED, updated_at=now)
        .returning(Message.subscriber_id)
        .execution_options(synchronize_session=False)
    ).all()
    replan_subscribers(session, [sid for (sid,) in rows], now)
    return len(rows)


def peek_due(session: Session, now: datetime, limit: int) -> list[Any]:
    """The rows a dispatch pass would claim as of `now`, in its order, read only
    (`steady tick --dry-run`): id, channel, kind, template and rule."""
    columns = (Message.id, Message.channel, Message.kind, Message.template, Message.rule)
    return list(session.execute(_due(now, limit, *columns)).all())


def _due(now: datetime, limit: int, *columns: Any) -> Any:
    """The due rows in claim order: replies and confirmations first, then the longest due."""
    return (
        select(*columns)
        .where(Message.status == MessageStatus.SCHEDULED, Message.scheduled_for <= now)
        .order_by(Message.priority, Message.scheduled_for, Message.id)
        .limit(limit)
    )


def claim_due(
    session: Session,
    now: datetime,
    limit: int,
    lease: timedelta,
    *,
    ids: Collection[int] | None = None,
    channels: Collection[str] | None = None,
    max_priority: int | None = None,
) -> list[int]:
    """Atomically move up to `limit` due rows to `sending`; returns their ids.

    Replies and confirmations (priority 0) first, then the longest due.
    `channels` narrows the claim to those channels (a limited channel is
    claimed on its own, by its sender's pace); `max_priority` to rows of that
    priority or more urgent (a sender whose day is nearly spent).

    PostgreSQL: `FOR UPDATE SKIP LOCKED`, so concurrent workers take disjoint
    rows without waiting. SQLite has one writer at a time, and the outer
    `status = 'scheduled'` condition makes the UPDATE itself the claim.

    The due rows are a MATERIALIZED CTE, not `IN (subquery)`: PostgreSQL may run
    such a subquery as the inner side of a nested-loop semi-join, once per
    outer row, and each rerun skips the rows this UPDATE already locked, so
    LIMIT 10 claimed every due row (seen with 80: a whole backlog held behind
    one worker's pace). A materialized CTE is evaluated once.
    """
    due = _due(now, limit, Message.id)
    if ids is not None:
        due = due.where(Message.id.in_(list(ids)))
    if channels is not None:
        due = due.where(Message.channel.in_(list(channels)))
    if max_priority is not None:
        due = due.where(Message.priority <= max_priority)
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    due_rows = due.cte("due").prefix_with("MATERIALIZED", dialect="postgresql")
    claimed = session.scalars(
        update(Message)
        .where(Message.id.in_(select(due_rows.c.id)), Message.status == MessageStatus.SCHEDULED)
        .values(
            status=MessageStatus.SENDING,
            lease_until=now + lease,
            attempts=Message.attempts + 1,
            updated_at=now,
        )
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    ).all()
    return list(claimed)


def record_outcomes(connection: Connection, outcomes: list[Outcome], now: datetime) -> None:
    """Write a batch's results in a few executemany statements."""
    sent = [o for o in outcomes if o.status == MessageStatus.SENT]
    retried = [o for o in outcomes if o.status == MessageStatus.SCHEDULED]
    settled = [o for o in outcomes if o.status not in (MessageStatus.SENT, MessageStatus.SCHEDULED)]
    table = messages_table
    if sent:
        # A status callback may already have moved the row past `sent`; keep that.
        connection.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(
                status=case(
                    # Late (its lease ran out: `unknown`), the provider's answer still
                    # settles it; reconciliation would only have found the same copy.
                    (
                        # Two comparisons, not IN: an expanding IN cannot be executemany'd.
                        or_(
                            table.c.status == MessageStatus.SENDING,
                            table.c.status == MessageStatus.UNKNOWN,
                        ),
                        MessageStatus.SENT,
                    ),
                    else_=table.c.status,
                ),
                provider=bindparam("b_provider"),
                provider_id=bindparam("b_provider_id"),
                sent_at=bindparam("b_sent_at"),
                lease_until=None,
                updated_at=now,
            ),
            [
                {
                    "b_id": o.message_id,
                    "b_provider": o.detail,
                    "b_provider_id": o.provider_id,
                    "b_sent_at": o.at or now,
                }
                for o in sent
            ],
        )
    if retried:
        connection.execute(
            update(table)
            .where(and_(table.c.id == bindparam("b_id"), table.c.status == MessageStatus.SENDING))
            .values(
                status=MessageStatus.SCHEDULED,
                scheduled_for=bindparam("b_retry_at"),
                error_code=bindparam("b_code"),
                lease_until=None,
                updated_at=now,
            ),
            [
                {"b_id": o.message_id, "b_retry_at": o.retry_at or now, "b_code": o.error_code}
                for o in retried
            ],
        )
    if settled:
        connection.execute(
            update(table)
            .where(and_(table.c.id == bindparam("b_id"), table.c.status == MessageStatus.SENDING))
            .values(
                status=bindparam("b_status"),
                error_code=bindparam("b_code"),
                error_detail=bindparam("b_detail"),
                lease_until=None,
                updated_at=now,
            ),
            [
                {
                    "b_id": o.message_id,
                    "b_status": o.status,
                    "b_code": o.error_code,
                    "b_detail": o.detail,
                }
                for o in settled
            ],
        )


def release_claims(connection: Connection, ids: list[int], now: datetime) -> int:
    """Put claimed, unsent rows back to `scheduled` as if never claimed.

    The claim's attempt is taken back (nothing reached a provider) and the lease
    cleared; `scheduled_for` stays, so they are due at once, in priority order.
    """
    if not ids:
        return 0
    result = connection.execute(
        update(messages_table)
        .where(messages_table.c.id.in_(ids), messages_table.c.status == MessageStatus.SENDING)
        .values(
            status=MessageStatus.SCHEDULED,
            attempts=messages_table.c.attempts - 1,
            lease_until=None,
            updated_at=now,
        )
    )
    return int(result.rowcount)


def replan_subscribers(session: Session, subscriber_ids: list[int | None], now: datetime) -> None:
    ids = sorted({sid for sid in subscriber_ids if sid is not None})
    if ids:
        session.execute(
            update(Subscriber)
            .where(Subscriber.id.in_(ids), Subscriber.flagged_at.is_(None))
            .values(next_plan_at=now)
            .execution_options(synchronize_session=False)
        )
