"""Subscribing, confirming, stopping and resuming: the life of a channel.

Double opt-in (PRODUCT.md "Law and carrier rules"): a channel starts `pending`
and only a confirmation from that very address (a YES text, a POST from the
emailed link) makes it `active`. Nobody can enrol someone else.

After STOP a number comes back only by START, YES or UNSTOP texted from that
phone (`resume`): never by a web signup, which leaves a stopped number exactly
as it is and sends it nothing, and never by a confirmation link, which confirms
pending channels only (`confirm_by_link`). An unsubscribed email address can
sign up again: that makes it pending, and only the link then sent to that inbox
confirms it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from service.addresses import address_hash
from service.channels import ChannelKind
from service.messages.catalog import CONFIRM_TEMPLATE, NUDGE_KINDS, Kind
from service.messages.lifecycle import PRIORITY_NOW
from service.storage.models import (
    Channel,
    ChannelStatus,
    Message,
    MessageStatus,
    Subscriber,
    Suppression,
)

log = structlog.get_logger(__name__)

# One confirmation request per address per this long: a signup form must not be a
# way to pump texts at a stranger's phone.
CONFIRM_RESEND_INTERVAL = timedelta(minutes=10)


@dataclass(frozen=True)
class SignupRequest:
    phone: str | None
    email: str | None
    timezone: str
    consent_method: str
    consent_evidence: dict[str, Any]
    cadence_per_week: int = 7
    timezone_candidates: str | None = None  # stored form; see service.people.zones


def is_suppressed(session: Session, address: str, secret: str) -> bool:
    digest = address_hash(address, secret)
    return (
        session.scalar(select(Suppression.id).where(Suppression.address_hash == digest)) is not None
    )


def suppress(
    session: Session, address: str, channel: ChannelKind, reason: str, secret: str, now: datetime
) -> None:
    """Add an address to Steady's own do-not-contact list (idempotent)."""
    digest = address_hash(address, secret)
    if session.scalar(select(Suppression.id).where(Suppression.address_hash == digest)) is None:
        session.add(
            Suppression(address_hash=digest, channel=channel, reason=reason, created_at=now)
        )


def unsuppress(session: Session, address: str, secret: str) -> None:
    session.execute(
        delete(Suppression).where(Suppression.address_hash == address_hash(address, secret))
    )


def queue_confirmation(session: Session, channel: Channel, now: datetime) -> Message | None:
    """Create the double opt-in request for a pending channel, unless one went lately."""
    recent = session.scalar(
        select(Message.id).where(
            Message.channel_id == channel.id,
            Message.kind == Kind.CONFIRM,
            Message.created_at > now - CONFIRM_RESEND_INTERVAL,
        )
    )
    if recent is not None:
        return None
    message = Message(
        subscriber_id=channel.subscriber_id,
        channel_id=channel.id,
        channel=channel.kind,
        kind=Kind.CONFIRM,
        template=CONFIRM_TEMPLATE,
        rule="double_opt_in",
        priority=PRIORITY_NOW,
        scheduled_for=now,
        created_at=now,
    )
    session.add(message)
    return message


def subscribe(
    session: Session, request: SignupRequest, secret: str, now: datetime
) -> list[Message]:
    """Record a signup and queue the confirmations. Returns the new confirm messages.

    Known addresses are handled quietly (the caller answers the same either way):
    pending ones get a fresh confirmation, a stopped email address starts a new
    opt-in, and stopped numbers, active and suppressed addresses get nothing. New
    addresses are never attached to an existing person, so nobody can add their
    own inbox to someone else's plan.
    """
    confirmations: list[Message] = []
    new_addresses: list[tuple[ChannelKind, str]] = []
    for kind, address in ((ChannelKind.SMS, request.phone), (ChannelKind.EMAIL, request.email)):
        if address is None:
            continue
        existing = session.scalar(
            select(Channel).where(Channel.kind == kind, Channel.address == address)
        )
        if existing is None:
            new_addresses.append((kind, address))
            continue
        if existing.status == ChannelStatus.STOPPED and kind == ChannelKind.SMS:
            # Only START from that phone reopens a number (CTIA; PRODUCT.md "Law").
            log.info("signup_stopped_number")
            continue
        if existing.status in (ChannelStatus.PENDING, ChannelStatus.STOPPED):
            if existing.status == ChannelStatus.STOPPED:
                _record_consent(existing, request, now)
                existing.status = ChannelStatus.PENDING
            confirmation = queue_confirmation(session, existing, now)
            if confirmation is not None:
                confirmations.append(confirmation)
    if new_addresses:
        subscriber = Subscriber(
            timezone=request.timezone,
            timezone_candidates=request.timezone_candidates,
            cadence_per_week=request.cadence_per_week,
            created_at=now,
        )
        session.add(subscriber)
        for kind, address in new_addresses:
            if is_suppressed(session, address, secret):
                # On our own do-not-contact list: say nothing, send nothing.
                log.info("signup_suppressed", channel=kind)
                continue
            channel = Channel(kind=kind, address=address, created_at=now, updated_at=now)
            _record_consent(channel, request, now)
            subscriber.channels.append(channel)
        session.flush()
        for channel in subscriber.channels:
            confirmation = queue_confirmation(session, channel, now)
            if confirmation is not None:
                confirmations.append(confirmation)
        if not subscriber.channels:
            session.delete(subscriber)
    session.flush()
    return confirmations


def _record_consent(channel: Channel, request: SignupRequest, now: datetime) -> None:
    channel.consent_at = now
    channel.consent_method = request.consent_method
    channel.consent_evidence = request.consent_evidence


def confirm(session: Session, channel: Channel, evidence: dict[str, Any], now: datetime) -> bool:
    """Make a pending or stopped channel active. Returns True if it changed."""
    if channel.status not in (ChannelStatus.PENDING, ChannelStatus.STOPPED):
        return False
    if channel.status == ChannelStatus.STOPPED:
        channel.stopped_at = None
    channel.status = ChannelStatus.ACTIVE
    channel.status_reason = None
    channel.confirmed_at = channel.confirmed_at or now
    channel.confirm_evidence = evidence
    channel.updated_at = now
    subscriber = channel.subscriber
    if subscriber.flagged_at is None:
        subscriber.next_plan_at = now
    return True


def confirm_by_link(
    session: Session, channel: Channel, secret: str, evidence: dict[str, Any], now: datetime
) -> bool:
    """POST /confirm/{token}: confirm a pending channel. A stopped one stays stopped
    (an old link is no way back after STOP). Returns True if it changed."""
    if channel.status != ChannelStatus.PENDING:
        return False
    # A pending address may be an unsubscribed inbox that signed up again: the
    # link was opened from that inbox, which is its consent, so it leaves our list.
    unsuppress(session, channel.address, secret)
    return confirm(session, channel, evidence, now)


def stop(session: Session, channel: Channel, reason: str, secret: str, now: datetime) -> bool:
    """Stop a channel at once: no nudge on it until the person starts it again."""
    changed = channel.status != ChannelStatus.STOPPED
    channel.status = ChannelStatus.STOPPED
    channel.status_reason = reason
    channel.stopped_at = now
    channel.updated_at = now
    cancel_pending_nudges(session, channel.subscriber_id, now, channel_id=channel.id)
    suppress(session, channel.address, channel.kind, reason, secret, now)
    return changed


def resume(
    session: Session, channel: Channel, secret: str, evidence: dict[str, Any], now: datetime
) -> bool:
    """START / YES after a stop: take the address off our list and make it active."""
    unsuppress(session, channel.address, secret)
    return confirm(session, channel, evidence, now)


def cancel_pending_nudges(
    session: Session, subscriber_id: int, now: datetime, *, channel_id: int | None = None
) -> int:
    """Cancel scheduled nudges (not confirmations or replies) and ask for a re-plan."""
    statement = (
        update(Message)
        .where(
            Message.subscriber_id == subscriber_id,
            Message.status == MessageStatus.SCHEDULED,
            Message.kind.in_([str(kind) for kind in NUDGE_KINDS]),
        )
        .values(status=MessageStatus.CANCELLED, updated_at=now)
    )
    if channel_id is not None:
        statement = statement.where(Message.channel_id == channel_id)
    cancelled = len(session.execute(statement.returning(Message.id)).all())
    session.execute(
        update(Subscriber)
        .where(Subscriber.id == subscriber_id, Subscriber.flagged_at.is_(None))
        .values(next_plan_at=now)
    )
    return cancelled


def record_reply(
    session: Session,
    channel: Channel,
    *,
    kind: Kind,
    template: str,
    rule: str,
    body: str,
    now: datetime,
) -> Message:
    """Log a TwiML reply as an outbound message (it went back in the webhook response)."""
    message = Message(
        subscriber_id=channel.subscriber_id,
        channel_id=channel.id,
        channel=channel.kind,
        kind=kind,
        template=template,
        rule=rule,
        body=body,
        priority=PRIORITY_NOW,
        status=MessageStatus.SENT,
        scheduled_for=now,
        sent_at=now,
        provider="twiml",
        created_at=now,
        updated_at=now,
    )
    session.add(message)
    return message
