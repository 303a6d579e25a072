"""The dispatcher: claim due messages in batches, send them, record what happened.

At most once. A batch is claimed in one statement and committed as `sending`
before any provider is called. Results go back in one bulk update. If the
process dies between the provider call and that update, the rows stay
`sending` until their lease runs out and then become `unknown`: they are
reconciled against the provider, never blindly resent.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import structlog
from sqlalchemy import Connection, Table, and_, bindparam, case, select, update
from sqlalchemy.orm import Session, sessionmaker

from service.catalog import IMMEDIATE_KINDS, Kind
from service.compose import Recipient, compose
from service.content import Content, TemplateError
from service.feedback import apply_send_errors
from service.metrics import provider_send_timer
from service.models import Channel, ChannelStatus, Message, MessageStatus, Subscriber
from service.pacing import PacingPolicy, in_sending_window
from service.policy import pacing_policy
from service.providers.base import Channel as ChannelName
from service.providers.base import Provider, ProviderError
from service.settings import Settings

log = structlog.get_logger(__name__)

MAX_SEND_ATTEMPTS = 3  # PRODUCT.md: transient failures, at most 3 tries
MAX_RETRY_DELAY = timedelta(minutes=15)  # INTERFACE.md §4: backoff at most 15 minutes
FIRST_RETRY_DELAY = timedelta(minutes=1)
# No answer at all: the provider may have accepted it. Resending could text a
# person twice, so the row goes to reconciliation instead.
AMBIGUOUS_ERROR_CODES = frozenset({"timeout"})

messages_table = cast(Table, Message.__table__)


@dataclass(frozen=True)
class Outcome:
    message_id: int
    subscriber_id: int | None
    channel: str
    kind: str
    template: str
    rule: str
    status: str
    provider_id: str | None = None
    error_code: str | None = None
    detail: str | None = None
    retry_at: datetime | None = None


@dataclass
class DispatchReport:
    outcomes: list[Outcome] = field(default_factory=list)
    expired: int = 0
    unknown: int = 0

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)


def retry_delay(attempts: int, retry_after: float | None) -> timedelta:
    """Exponential backoff from one minute, at least Retry-After, at most 15 minutes."""
    delay: timedelta = FIRST_RETRY_DELAY * (4 ** max(attempts - 1, 0))
    if retry_after is not None:
        delay = max(delay, timedelta(seconds=retry_after))
    return min(delay, MAX_RETRY_DELAY)


def release_expired_leases(session: Session, now: datetime) -> int:
    """Rows stuck in `sending` past their lease become `unknown` (for reconciliation)."""
    rows = session.execute(
        update(Message)
        .where(Message.status == MessageStatus.SENDING, Message.lease_until < now)
        .values(status=MessageStatus.UNKNOWN, lease_until=None, updated_at=now)
        .returning(Message.subscriber_id, Message.kind)
        .execution_options(synchronize_session=False)
    ).all()
    _replan(session, [sid for sid, kind in rows if kind not in IMMEDIATE_KINDS], now)
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
    _replan(session, [sid for (sid,) in rows], now)
    return len(rows)


def claim_due(
    session: Session,
    now: datetime,
    limit: int,
    lease: timedelta,
    *,
    ids: Collection[int] | None = None,
) -> list[int]:
    """Atomically move up to `limit` due rows to `sending`; returns their ids.

    PostgreSQL: `FOR UPDATE SKIP LOCKED`, so concurrent workers take disjoint
    rows without waiting. SQLite has one writer at a time, and the outer
    `status = 'scheduled'` condition makes the UPDATE itself the claim.
    """
    due = (
        select(Message.id)
        .where(Message.status == MessageStatus.SCHEDULED, Message.scheduled_for <= now)
        .order_by(Message.priority, Message.scheduled_for, Message.id)
        .limit(limit)
    )
    if ids is not None:
        due = due.where(Message.id.in_(list(ids)))
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    claimed = session.scalars(
        update(Message)
        .where(Message.id.in_(due.scalar_subquery()), Message.status == MessageStatus.SCHEDULED)
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


@dataclass(frozen=True)
class _Claimed:
    recipient: Recipient
    subscriber_id: int | None
    kind: str
    template: str
    rule: str
    attempts: int
    expires_at: datetime | None
    channel_status: str
    timezone: str
    hours: tuple[int, int]
    paused_until: datetime | None
    flagged: bool


def _load_claimed(session: Session, ids: list[int]) -> list[_Claimed]:
    rows = session.execute(
        select(
            Message.id,
            Message.subscriber_id,
            Message.channel_id,
            Message.channel,
            Message.kind,
            Message.template,
            Message.rule,
            Message.attempts,
            Message.expires_at,
            Channel.address,
            Channel.status,
            Subscriber.discreet,
            Subscriber.cadence_per_week,
            Subscriber.timezone,
            Subscriber.hour_start,
            Subscriber.hour_end,
            Subscriber.paused_until,
            Subscriber.flagged_at,
        )
        .join(Channel, Channel.id == Message.channel_id)
        .join(Subscriber, Subscriber.id == Message.subscriber_id)
        .where(Message.id.in_(ids))
        .order_by(Message.priority, Message.scheduled_for, Message.id)
    ).all()
    return [
        _Claimed(
            recipient=Recipient(
                message_id=row.id,
                channel_id=row.channel_id,
                channel=row.channel,
                address=row.address,
                discreet=row.discreet,
                cadence_per_week=row.cadence_per_week,
            ),
            subscriber_id=row.subscriber_id,
            kind=row.kind,
            template=row.template,
            rule=row.rule,
            attempts=row.attempts,
            expires_at=row.expires_at,
            channel_status=row.status,
            timezone=row.timezone,
            hours=(row.hour_start, row.hour_end),
            paused_until=row.paused_until,
            flagged=row.flagged_at is not None,
        )
        for row in rows
    ]


def _why_not_send(item: _Claimed, now: datetime, policy: PacingPolicy) -> tuple[str, str] | None:
    """A last guard at send time: (status, reason) if this message must not go now."""
    if item.kind == Kind.CONFIRM:
        if item.channel_status != ChannelStatus.PENDING:
            return MessageStatus.CANCELLED, f"channel_{item.channel_status}"
        return None
    if item.channel_status != ChannelStatus.ACTIVE:
        return MessageStatus.CANCELLED, f"channel_{item.channel_status}"
    if item.kind in IMMEDIATE_KINDS:
        return None
    if item.flagged:
        return MessageStatus.CANCELLED, "flagged"
    if item.paused_until is not None and item.paused_until > now:
        return MessageStatus.CANCELLED, "paused"
    if item.expires_at is not None and item.expires_at < now:
        return MessageStatus.EXPIRED, "missed_window"
    if not in_sending_window(now, item.timezone, item.hours, policy):
        return MessageStatus.EXPIRED, "outside_window"
    return None


class Dispatcher:
    """Sends due messages through the providers it is given."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        providers: Mapping[ChannelName, Provider],
        content: Content | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.providers = providers
        self.content = content or Content()
        self.lease = timedelta(seconds=settings.send_lease_seconds)
        self.policy = pacing_policy(settings)

    def housekeeping(self, now: datetime) -> tuple[int, int]:
        """Expire overdue nudges and release dead leases. Returns (expired, unknown)."""
        with self.sessions() as session:
            expired = expire_overdue(session, now)
            unknown = release_expired_leases(session, now)
            session.commit()
        return expired, unknown

    def run_batch(
        self, now: datetime, *, limit: int | None = None, ids: Collection[int] | None = None
    ) -> list[Outcome]:
        """Claim one batch, send it, record the results. Returns one outcome per row."""
        with self.sessions() as session:
            claimed_ids = claim_due(
                session, now, limit or self.settings.dispatch_batch_size, self.lease, ids=ids
            )
            session.commit()
            if not claimed_ids:
                return []
            claimed = _load_claimed(session, claimed_ids)
            session.commit()
        outcomes = [self._send_one(item, now) for item in claimed]
        with self.sessions() as session:
            record_outcomes(session.connection(), outcomes, now)
            # Permanent errors say something about the address (STOP, unreachable,
            # carrier filtering): the same feedback a status callback would give.
            apply_send_errors(
                session,
                [
                    (o.message_id, o.error_code)
                    for o in outcomes
                    if o.status == MessageStatus.FAILED and o.error_code
                ],
                self.settings.secret_key.get_secret_value(),
                now,
            )
            _replan(
                session,
                [
                    o.subscriber_id
                    for o in outcomes
                    if o.kind not in IMMEDIATE_KINDS and o.status != MessageStatus.SCHEDULED
                ],
                now,
            )
            session.commit()
        return outcomes

    def drain(self, now: datetime, *, max_batches: int | None = None) -> DispatchReport:
        """Housekeeping, then batches until nothing is due (or `max_batches`)."""
        report = DispatchReport()
        report.expired, report.unknown = self.housekeeping(now)
        batches = 0
        while max_batches is None or batches < max_batches:
            outcomes = self.run_batch(now)
            report.outcomes.extend(outcomes)
            batches += 1
            if len(outcomes) < self.settings.dispatch_batch_size:
                break
        return report

    def _send_one(self, item: _Claimed, now: datetime) -> Outcome:
        recipient = item.recipient

        def outcome(status: str, **extra: Any) -> Outcome:
            return Outcome(
                message_id=recipient.message_id,
                subscriber_id=item.subscriber_id,
                channel=recipient.channel,
                kind=item.kind,
                template=item.template,
                rule=item.rule,
                status=status,
                **extra,
            )

        refusal = _why_not_send(item, now, self.policy)
        if refusal is not None:
            status, reason = refusal
            return outcome(status, detail=reason)
        try:
            message = compose(self.settings, self.content, recipient, item.template)
        except TemplateError as exc:
            log.error("template_failed", message_id=recipient.message_id, error=str(exc))
            return outcome(MessageStatus.FAILED, error_code="template", detail=str(exc)[:300])
        provider = self.providers[recipient.channel]
        try:
            with provider_send_timer(provider.name, recipient.channel):
                provider_id = provider.send(message)
        except ProviderError as exc:
            return self._failure(item, exc, now, outcome, provider.name)
        log.info("message_sent", message_id=recipient.message_id, provider=provider.name)
        return outcome(MessageStatus.SENT, provider_id=provider_id, detail=provider.name)

    def _failure(
        self,
        item: _Claimed,
        exc: ProviderError,
        now: datetime,
        outcome: Callable[..., Outcome],
        provider: str,
    ) -> Outcome:
        log.warning(
            "send_failed",
            message_id=item.recipient.message_id,
            provider=provider,
            code=exc.code,
            http_status=exc.http_status,
            permanent=exc.permanent,
            attempt=item.attempts,
        )
        detail = str(exc)[:300]
        if exc.permanent:
            return outcome(MessageStatus.FAILED, error_code=exc.code, detail=detail)
        if exc.code in AMBIGUOUS_ERROR_CODES:
            return outcome(MessageStatus.UNKNOWN, error_code=exc.code, detail=detail)
        if item.attempts >= MAX_SEND_ATTEMPTS:
            return outcome(
                MessageStatus.FAILED, error_code=exc.code or "transient", detail="retries exhausted"
            )
        retry_at = now + retry_delay(item.attempts, exc.retry_after)
        if item.expires_at is not None and retry_at > item.expires_at:
            return outcome(MessageStatus.EXPIRED, error_code=exc.code, detail="retry after window")
        return outcome(
            MessageStatus.SCHEDULED, error_code=exc.code, detail=detail, retry_at=retry_at
        )


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
                    (table.c.status == MessageStatus.SENDING, MessageStatus.SENT),
                    else_=table.c.status,
                ),
                provider=bindparam("b_provider"),
                provider_id=bindparam("b_provider_id"),
                sent_at=now,
                lease_until=None,
                updated_at=now,
            ),
            [
                {"b_id": o.message_id, "b_provider": o.detail, "b_provider_id": o.provider_id}
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


def _replan(session: Session, subscriber_ids: list[int | None], now: datetime) -> None:
    ids = sorted({sid for sid in subscriber_ids if sid is not None})
    if ids:
        session.execute(
            update(Subscriber)
            .where(Subscriber.id.in_(ids), Subscriber.flagged_at.is_(None))
            .values(next_plan_at=now)
            .execution_options(synchronize_session=False)
        )
