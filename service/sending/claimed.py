"""A claimed message as the dispatcher sends it: loaded in one query, checked once
more just before it goes, and what a failed send does to it."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.messages.catalog import IMMEDIATE_KINDS, Kind
from service.messages.compose import Recipient
from service.messages.lifecycle import MAX_SEND_ATTEMPTS, PRIORITY_NUDGE
from service.pacing.rules import PacingPolicy
from service.pacing.window import (
    in_sending_window,
    sending_zones,
    split_zones,
    window_closing_for,
    window_hours,
)
from service.providers.base import OutboundMessage, ProviderError
from service.sending.claims import RECIPIENT_COLUMNS, Outcome, recipient_of
from service.storage.models import Channel, ChannelStatus, Message, MessageStatus, Subscriber

log = structlog.get_logger(__name__)

MAX_RETRY_DELAY = timedelta(minutes=15)  # INTERFACE.md §4: backoff at most 15 minutes
FIRST_RETRY_DELAY = timedelta(minutes=1)
# No answer, or the connection broke after the request went out: the provider may
# have accepted it. Resending could text a person twice, so the row goes to
# reconciliation instead. ("connection", no connection made at all, is retried.)
AMBIGUOUS_ERROR_CODES = frozenset({"timeout", "connection_lost"})


@dataclass(frozen=True)
class Claimed:
    """One claimed message with what the last check and the send need, in one row."""

    recipient: Recipient
    subscriber_id: int | None
    kind: str
    template: str
    rule: str
    attempts: int
    expires_at: datetime | None
    channel_status: str
    timezone: str
    candidate_zones: tuple[str, ...]
    hours: tuple[int, int]
    paused_until: datetime | None
    flagged: bool
    body: str | None = None  # rendered when queued (an operator's reply); else rendered here
    priority: int = PRIORITY_NUDGE  # PRIORITY_NOW: answers the person (the day's last tenth)

    def outcome(self, status: str, **extra: Any) -> Outcome:
        """What became of this message, for the bulk update."""
        return Outcome(
            message_id=self.recipient.message_id,
            subscriber_id=self.subscriber_id,
            channel=self.recipient.channel,
            kind=self.kind,
            template=self.template,
            rule=self.rule,
            status=status,
            **extra,
        )


def load_claimed(session: Session, ids: list[int]) -> list[Claimed]:
    rows = session.execute(
        select(
            *RECIPIENT_COLUMNS,
            Message.subscriber_id,
            Message.template,
            Message.rule,
            Message.attempts,
            Message.expires_at,
            Channel.status,
            Subscriber.timezone,
            Subscriber.timezone_candidates,
            Subscriber.hour_start,
            Subscriber.hour_end,
            Subscriber.paused_until,
            Subscriber.flagged_at,
            Message.body,
            Message.priority,
        )
        .join(Channel, Channel.id == Message.channel_id)
        .join(Subscriber, Subscriber.id == Message.subscriber_id)
        .where(Message.id.in_(ids))
        .order_by(Message.priority, Message.scheduled_for, Message.id)
    ).all()
    return [
        Claimed(
            recipient=recipient_of(row),
            subscriber_id=row.subscriber_id,
            kind=row.kind,
            template=row.template,
            rule=row.rule,
            attempts=row.attempts,
            expires_at=row.expires_at,
            channel_status=row.status,
            timezone=row.timezone,
            candidate_zones=split_zones(row.timezone_candidates),
            hours=(row.hour_start, row.hour_end),
            paused_until=row.paused_until,
            flagged=row.flagged_at is not None,
            body=row.body,
            priority=row.priority,
        )
        for row in rows
    ]


def why_not_send(item: Claimed, now: datetime, policy: PacingPolicy) -> tuple[str, str] | None:
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
    if not in_sending_window(
        now, item.timezone, item.hours, policy, candidates=item.candidate_zones
    ):
        return MessageStatus.EXPIRED, "outside_window"
    return None


def validity_seconds(item: Claimed, at: datetime, policy: PacingPolicy) -> int | None:
    """Seconds the provider may still hold this message before it is late; None: no limit.

    A nudge is worth sending until its window closes (the window its candidate
    zones share), or its own expiry if sooner. Replies, confirmations and
    operators' texts answer the person at any hour: the provider's default.
    """
    if item.kind in IMMEDIATE_KINDS:
        return None
    zones = sending_zones(item.timezone, item.candidate_zones)
    end = window_closing_for(at, zones, *window_hours(item.hours, policy))
    if item.expires_at is not None:
        end = min(end, item.expires_at)
    return math.floor((end - at).total_seconds())


def with_validity(message: OutboundMessage, seconds: int | None) -> OutboundMessage | None:
    """The message with its validity, or None when less than a second of it is left."""
    if seconds is None:
        return message
    if seconds < 1:
        return None
    return dataclasses.replace(message, validity_seconds=seconds)


def retry_delay(attempts: int, retry_after: float | None) -> timedelta:
    """Exponential backoff from one minute, at least Retry-After, at most 15 minutes."""
    delay: timedelta = FIRST_RETRY_DELAY * (4 ** max(attempts - 1, 0))
    if retry_after is not None:
        delay = max(delay, timedelta(seconds=retry_after))
    return min(delay, MAX_RETRY_DELAY)


def failure_outcome(item: Claimed, exc: ProviderError, now: datetime, provider: str) -> Outcome:
    """What a failed send does to its message: failed for good, handed to
    reconciliation (the provider may have it), retried later, or expired."""
    outcome = item.outcome
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
        return outcome(MessageStatus.FAILED, error_code=exc.code, detail=detail, cause=exc.cause)
    if exc.code in AMBIGUOUS_ERROR_CODES:
        return outcome(MessageStatus.UNKNOWN, error_code=exc.code, detail=detail)
    if item.attempts >= MAX_SEND_ATTEMPTS:
        return outcome(
            MessageStatus.FAILED, error_code=exc.code or "transient", detail="retries exhausted"
        )
    retry_at = now + retry_delay(item.attempts, exc.retry_after)
    if item.expires_at is not None and retry_at > item.expires_at:
        return outcome(MessageStatus.EXPIRED, error_code=exc.code, detail="retry after window")
    return outcome(MessageStatus.SCHEDULED, error_code=exc.code, detail=detail, retry_at=retry_at)
