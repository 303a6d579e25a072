"""Subscribing, confirming, stopping and resuming: the life of a channel.

Double opt-in (PRODUCT.md "Law and carrier rules"): a channel starts `pending`
and only a confirmation from that very address (a YES text, a POST from the
emailed link) makes it `active`. Nobody can enrol someone else.

Channels are one person only once that person proved both (PRODUCT.md "Abuse"):
a phone and an email given together become two people, each with its own
confirmation; a second channel joins a person only when it was asked for from a
confirmed channel's preferences page and then confirmed on itself
(`request_join`, `confirm`). Nobody can read or stop someone else's texts by
typing their number next to their own email.

After STOP a number comes back only by START, YES or UNSTOP texted from that
phone (`resume`): never by a web signup, which leaves a stopped number exactly
as it is and sends it nothing, and never by a confirmation link, which confirms
pending channels only (`confirm_by_link`). An unsubscribed email address can
sign up again: that makes it pending, and only the link then sent to that inbox
confirms it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service.addresses import AddressHasher, mailbox_key
from service.channels import ChannelKind
from service.messages.catalog import CONFIRM_TEMPLATE, NUDGE_KINDS, Kind
from service.messages.lifecycle import PRIORITY_NOW
from service.people.abuse import number_country
from service.people.do_not_contact import is_suppressed, suppress, unsuppress
from service.reporting.metrics import (
    record_sms_confirmation_confirmed,
    record_sms_confirmation_sent,
)
from service.storage.models import (
    Channel,
    ChannelStatus,
    Message,
    MessageStatus,
    Subscriber,
)

log = structlog.get_logger(__name__)

# One confirmation request per address per this long, and at most so many a day:
# a signup form must not be a way to bomb a stranger's phone or inbox.
CONFIRM_RESEND_INTERVAL = timedelta(minutes=10)
CONFIRMATIONS_PER_ADDRESS_PER_DAY = 3


@dataclass(frozen=True)
class SignupRequest:
    phone: str | None
    email: str | None
    timezone: str
    consent_method: str
    consent_evidence: dict[str, Any]
    cadence_per_week: int = 7
    timezone_candidates: str | None = None  # stored form; see service.people.zones.numbers


def find_channel(session: Session, kind: str, address: str) -> Channel | None:
    """The channel of this mailbox (case, `+tags` and Gmail dots aside), or of this number."""
    return session.scalar(
        select(Channel)
        .where(Channel.kind == kind, Channel.address_key == mailbox_key(kind, address))
        .order_by(Channel.id)
        .limit(1)
    )


def confirmations_capped(session: Session, channel: Channel, now: datetime) -> bool:
    """True when this address had a confirmation in the last 10 minutes, or 3 in 24 hours."""
    sent, latest = session.execute(
        select(func.count(), func.max(Message.created_at)).where(
            Message.subscriber_id == channel.subscriber_id,
            Message.channel_id == channel.id,
            Message.kind == Kind.CONFIRM,
            Message.created_at > now - timedelta(days=1),
        )
    ).one()
    if sent >= CONFIRMATIONS_PER_ADDRESS_PER_DAY:
        return True
    # max() loses the column type on SQLite: compare as aware UTC.
    return latest is not None and _aware(latest) > now - CONFIRM_RESEND_INTERVAL


def _aware(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def queue_confirmation(session: Session, channel: Channel, now: datetime) -> Message | None:
    """Create the double opt-in request for a pending channel, unless capped (see above)."""
    if channel.id is not None and confirmations_capped(session, channel, now):
        return None
    if channel.kind == ChannelKind.SMS:
        record_sms_confirmation_sent(number_country(channel.address))
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
    session: Session, request: SignupRequest, hasher: AddressHasher, now: datetime
) -> list[Message]:
    """Record a signup and queue the confirmations. Returns the new confirm messages.

    Known addresses are handled quietly (the caller answers the same either way):
    pending ones get a fresh confirmation, a stopped email address starts a new
    opt-in, and stopped numbers, active and suppressed addresses get nothing. Each
    new address becomes a person of its own: a phone and an email given together
    are two people until one person proves both (`request_join`), and nobody can
    add an inbox to someone else's plan.
    """
    confirmations: list[Message] = []
    for kind, address in ((ChannelKind.SMS, request.phone), (ChannelKind.EMAIL, request.email)):
        if address is None:
            continue
        existing = find_channel(session, kind, address)
        if existing is None:
            channel = _new_person(session, kind, address, request, hasher, now)
        else:
            channel = existing
            if existing.status == ChannelStatus.STOPPED and kind == ChannelKind.SMS:
                # Only START from that phone reopens a number (CTIA; PRODUCT.md "Law").
                log.info("signup_stopped_number")
                continue
            if existing.status not in (ChannelStatus.PENDING, ChannelStatus.STOPPED):
                continue
            if existing.status == ChannelStatus.STOPPED:
                _record_consent(existing, request, now)
                existing.status = ChannelStatus.PENDING
        if channel is None:
            continue
        confirmation = queue_confirmation(session, channel, now)
        if confirmation is not None:
            confirmations.append(confirmation)
    session.flush()
    return confirmations


def _new_person(
    session: Session,
    kind: ChannelKind,
    address: str,
    request: SignupRequest,
    hasher: AddressHasher,
    now: datetime,
    *,
    joined_from: Channel | None = None,
) -> Channel | None:
    """A pending channel with a person of its own; None for a suppressed address."""
    if is_suppressed(session, address, hasher):
        # On our own do-not-contact list: say nothing, send nothing.
        log.info("signup_suppressed", channel=kind)
        return None
    subscriber = Subscriber(
        timezone=request.timezone,
        timezone_candidates=request.timezone_candidates,
        cadence_per_week=request.cadence_per_week,
        created_at=now,
    )
    channel = Channel(
        kind=kind,
        address=address,
        created_at=now,
        updated_at=now,
        joined_from_id=joined_from.id if joined_from is not None else None,
    )
    _record_consent(channel, request, now)
    subscriber.channels.append(channel)
    session.add(subscriber)
    session.flush()
    return channel


def request_join(
    session: Session,
    owner: Channel,
    kind: ChannelKind,
    address: str,
    request: SignupRequest,
    hasher: AddressHasher,
    now: datetime,
) -> Message | None:
    """Ask `address` to join the person of `owner` (a confirmed channel's preferences page).

    The new channel waits as a person of its own and joins only when confirmed
    on itself (`confirm`): the one person who holds the page and the new address
    has then proven both. A known address joins only while it is pending and
    alone; anything else is left as it is, quietly (the page answers the same).
    """
    if owner.confirmed_at is None or any(c.kind == kind for c in owner.subscriber.channels):
        return None
    existing = find_channel(session, kind, address)
    if existing is None:
        channel = _new_person(session, kind, address, request, hasher, now, joined_from=owner)
    elif (
        existing.status == ChannelStatus.PENDING
        and existing.confirmed_at is None
        and len(existing.subscriber.channels) == 1
    ):
        channel = existing
        channel.joined_from_id = owner.id
        _record_consent(channel, request, now)
    else:
        return None
    return None if channel is None else queue_confirmation(session, channel, now)


def _join_proven_person(session: Session, channel: Channel, now: datetime) -> None:
    """Move a channel confirmed on itself over to the person whose page asked for it."""
    if channel.joined_from_id is None:
        return
    owner = session.get(Channel, channel.joined_from_id)
    if owner is None or owner.confirmed_at is None or owner.subscriber_id == channel.subscriber_id:
        return
    if any(c.kind == channel.kind for c in owner.subscriber.channels):
        return  # the person got a channel of this kind meanwhile: stay apart
    waiting = channel.subscriber
    channel.subscriber = owner.subscriber
    session.flush()
    session.execute(
        update(Message)
        .where(Message.subscriber_id == waiting.id, Message.channel_id == channel.id)
        .values(subscriber_id=owner.subscriber_id, updated_at=now)
    )
    if not [c for c in waiting.channels if c.id != channel.id]:
        session.delete(waiting)
    log.info("channel_joined", subscriber_id=owner.subscriber_id, channel=channel.kind)


def proven_channels(subscriber: Subscriber, via: Channel) -> list[Channel]:
    """The channels a link of `via` may show and change: itself, and those proven with it.

    Proven together means one asked the other to join and the other confirmed
    on itself. Two channels of one person without that bond (signed up together
    before issue 11) stay apart: each link shows its own only.
    """
    shown = {via.id}
    grew = True
    while grew:
        grew = False
        for channel in subscriber.channels:
            if channel.id in shown:
                continue
            if channel.joined_from_id in shown or any(
                other.id in shown and other.joined_from_id == channel.id
                for other in subscriber.channels
            ):
                shown.add(channel.id)
                grew = True
    return [channel for channel in subscriber.channels if channel.id in shown]


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
    if channel.confirmed_at is None:
        if channel.kind == ChannelKind.SMS:
            record_sms_confirmation_confirmed(number_country(channel.address))
        _join_proven_person(session, channel, now)
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
    session: Session,
    channel: Channel,
    hasher: AddressHasher,
    evidence: dict[str, Any],
    now: datetime,
) -> bool:
    """POST /confirm/{token}: confirm a pending channel. A stopped one stays stopped
    (an old link is no way back after STOP). Returns True if it changed."""
    if channel.status != ChannelStatus.PENDING:
        return False
    # A pending address may be an unsubscribed inbox that signed up again: the
    # link was opened from that inbox, which is its consent, so it leaves our list.
    return resume(session, channel, hasher, evidence, now)


def stop(
    session: Session, channel: Channel, reason: str, hasher: AddressHasher, now: datetime
) -> bool:
    """Stop a channel at once: no nudge on it until the person starts it again."""
    changed = channel.status != ChannelStatus.STOPPED
    channel.status = ChannelStatus.STOPPED
    channel.status_reason = reason
    channel.stopped_at = now
    channel.updated_at = now
    cancel_pending_nudges(session, channel.subscriber_id, now, channel_id=channel.id)
    suppress(session, channel.address, channel.kind, reason, hasher, now)
    return changed


def resume(
    session: Session,
    channel: Channel,
    hasher: AddressHasher,
    evidence: dict[str, Any],
    now: datetime,
) -> bool:
    """START / YES after a stop: take the address off our list and make it active."""
    unsuppress(session, channel.address, hasher)
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
