"""What a provider's verdict on an address does to a channel and its person.

PRODUCT.md "Delivery feedback": an opt-out at the carrier is the person's STOP;
an address that cannot be reached is suppressed and nudges move to the other
channel; carrier filtering and sender-registration errors pause the person and
alert an operator, because retrying them blindly only makes the filtering worse.
Every step here is idempotent, so a repeated report has one effect.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.addresses import AddressHasher
from service.people import do_not_contact, subscriptions
from service.providers.base import Cause, DeliveryReason
from service.storage.models import Channel, ChannelStatus, Message, MessageStatus, Subscriber

log = structlog.get_logger(__name__)

# A phone that is absent (off, out of coverage) is gone only after a run of the
# same failure (PRODUCT.md: an unreachable handset three times running).
ABSENT_RUN = 3
# How long a person's nudges pause after a carrier or compliance block, at least;
# the operator flag holds them further until someone has looked.
CARRIER_BLOCK_PAUSE = timedelta(hours=24)


class Verdict(StrEnum):
    """What one provider report decided for a channel."""

    STOPPED = "stopped"  # the person's own opt-out
    SUPPRESSED = "suppressed"  # the address cannot be reached
    PAUSED = "paused"  # carrier or compliance block: paused, operator alerted
    NONE = "none"  # nothing to do for the channel (transient, or one absent phone)


def verdict_for(session: Session, channel: Channel, cause: Cause) -> tuple[Verdict, str]:
    """What a failure's cause decides for this channel: (verdict, reason to record)."""
    reason = cause.reason
    if reason in (DeliveryReason.OPTED_OUT, DeliveryReason.SPAM):
        return Verdict.STOPPED, cause.label
    if reason == DeliveryReason.UNREACHABLE:
        return Verdict.SUPPRESSED, cause.label
    if reason == DeliveryReason.ABSENT and cause.code is not None:
        if failure_run(session, channel.id, cause.code) >= ABSENT_RUN:
            return Verdict.SUPPRESSED, f"{cause.label}_x{ABSENT_RUN}"
        return Verdict.NONE, ""
    if reason in (DeliveryReason.FILTERED, DeliveryReason.SENDER_BLOCKED):
        return Verdict.PAUSED, cause.label
    return Verdict.NONE, ""


def failure_run(session: Session, channel_id: int, code: str) -> int:
    """How many of the channel's latest settled messages in a row failed with `code`.

    Only messages with a final delivery verdict count: one still `sent` says
    nothing yet, and one delivered ends the run.
    """
    codes = session.scalars(
        select(Message.error_code)
        .where(
            Message.channel_id == channel_id,
            Message.status.in_(
                [MessageStatus.DELIVERED, MessageStatus.UNDELIVERED, MessageStatus.FAILED]
            ),
        )
        .order_by(Message.id.desc())
        .limit(ABSENT_RUN)
    ).all()
    run = 0
    for found in codes:
        if found != code:
            break
        run += 1
    return run


def apply_verdict(
    session: Session,
    channel: Channel,
    verdict: Verdict,
    reason: str,
    hasher: AddressHasher,
    now: datetime,
    *,
    message_id: int | None = None,
) -> bool:
    """Carry out a verdict on a channel. Returns True if anything changed."""
    if verdict == Verdict.STOPPED:
        changed = subscriptions.stop(session, channel, reason, hasher, now)
    elif verdict == Verdict.SUPPRESSED:
        changed = suppress_channel(session, channel, reason, hasher, now)
    elif verdict == Verdict.PAUSED:
        changed = pause_for_operator(session, channel.subscriber, reason, now)
    else:
        return False
    log.info(
        "channel_feedback",
        verdict=str(verdict),
        reason=reason,
        channel=channel.kind,
        channel_id=channel.id,
        message_id=message_id,
        changed=changed,
    )
    return changed


def suppress_channel(
    session: Session, channel: Channel, reason: str, hasher: AddressHasher, now: datetime
) -> bool:
    """The provider cannot reach this address: no more sends to it, from any path.

    The channel goes `suppressed`, the address onto Steady's own do-not-contact
    list, and its scheduled nudges are cancelled with a re-plan, so the planner
    moves the person to their other confirmed channel if they have one. A channel
    the person stopped stays `stopped`: that is their choice, and it says more.
    """
    do_not_contact.suppress(session, channel.address, channel.kind, reason, hasher, now)
    if channel.status in (ChannelStatus.STOPPED, ChannelStatus.SUPPRESSED):
        return False
    channel.status = ChannelStatus.SUPPRESSED
    channel.status_reason = reason[:64]
    channel.updated_at = now
    subscriptions.cancel_pending_nudges(session, channel.subscriber_id, now, channel_id=channel.id)
    return True


def pause_for_operator(
    session: Session, subscriber: Subscriber, reason: str, now: datetime
) -> bool:
    """Pause a person's nudges after a carrier or compliance block and alert operators.

    The alert is a structlog warning (`operator_alert`, ids only, no address) and
    the subscriber's flag, which `/admin/api/flagged` lists; the flag also keeps
    the planner away until an operator clears it. A flag that is already there
    (a crisis, say) is kept: it is the more important one.
    """
    pause_until = now + CARRIER_BLOCK_PAUSE
    changed = False
    if subscriber.paused_until is None or subscriber.paused_until < pause_until:
        subscriber.paused_until = pause_until
        changed = True
    if subscriber.flagged_at is None:
        subscriber.flagged_at = now
        subscriber.flag_reason = reason
        changed = True
    subscriptions.cancel_pending_nudges(session, subscriber.id, now)
    log.warning(
        "operator_alert",
        reason=reason,
        code=reason.rsplit("_", 1)[-1],
        subscriber_id=subscriber.id,
        paused_until=pause_until.isoformat(),
    )
    return changed
