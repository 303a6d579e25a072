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

from service.people import subscriptions
from service.storage.models import Channel, ChannelStatus, Message, MessageStatus, Subscriber

log = structlog.get_logger(__name__)

# Twilio error codes (https://www.twilio.com/docs/api/errors/<code>).
# 21610: the recipient replied STOP to our sender at the carrier; it is their STOP.
TWILIO_OPTED_OUT = "21610"
# The number can never receive SMS from us: invalid (21211), not a mobile (21614),
# unknown handset (30005), landline or unreachable carrier (30006).
TWILIO_UNREACHABLE = frozenset({"21211", "21614", "30005", "30006"})
# 30003 "unreachable destination handset" is often a phone that is off or out of
# coverage, so only a run of them means the number is gone.
TWILIO_HANDSET_UNREACHABLE = "30003"
HANDSET_UNREACHABLE_RUN = 3  # PRODUCT.md: "30003 three times running"
# 30007: the carrier filtered the message as unwanted.
TWILIO_CARRIER_FILTERED = "30007"
# The 3002x family is US A2P 10DLC throughput and daily caps (30022 rate limit,
# 30023 daily cap, 30027 T-Mobile daily limit); the 3003x family is sender
# registration and verification (30032 toll-free deactivated, 30034 unregistered
# number, 30035 registration pending). Neither is about the person's number:
# sending more only deepens the block, so a person reached by one is paused and
# an operator has to look (PRODUCT.md: "never retried blindly").
TWILIO_SENDER_COMPLIANCE_PREFIXES = ("3002", "3003")
# How long a person's nudges pause after a carrier or compliance block, at least;
# the operator flag holds them further until someone has looked.
CARRIER_BLOCK_PAUSE = timedelta(hours=24)


class Verdict(StrEnum):
    """What one provider report decided for a channel."""

    STOPPED = "stopped"  # the person's own opt-out
    SUPPRESSED = "suppressed"  # the address cannot be reached
    PAUSED = "paused"  # carrier or compliance block: paused, operator alerted
    NONE = "none"  # nothing to do for the channel (transient, or a single 30003)


def sms_error_verdict(session: Session, channel: Channel, code: str) -> tuple[Verdict, str]:
    """Classify a Twilio error code for this channel: (verdict, reason)."""
    if code == TWILIO_OPTED_OUT:
        return Verdict.STOPPED, f"carrier_opt_out_{code}"
    if code in TWILIO_UNREACHABLE:
        return Verdict.SUPPRESSED, f"twilio_{code}"
    if code == TWILIO_HANDSET_UNREACHABLE:
        if handset_unreachable_run(session, channel.id) >= HANDSET_UNREACHABLE_RUN:
            return Verdict.SUPPRESSED, f"twilio_{code}_x{HANDSET_UNREACHABLE_RUN}"
        return Verdict.NONE, ""
    if code == TWILIO_CARRIER_FILTERED:
        return Verdict.PAUSED, f"carrier_filtering_{code}"
    if code.startswith(TWILIO_SENDER_COMPLIANCE_PREFIXES):
        return Verdict.PAUSED, f"sender_compliance_{code}"
    return Verdict.NONE, ""


def handset_unreachable_run(session: Session, channel_id: int) -> int:
    """How many of the channel's latest settled messages in a row failed with 30003.

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
        .limit(HANDSET_UNREACHABLE_RUN)
    ).all()
    run = 0
    for code in codes:
        if code != TWILIO_HANDSET_UNREACHABLE:
            break
        run += 1
    return run


def apply_verdict(
    session: Session,
    channel: Channel,
    verdict: Verdict,
    reason: str,
    secret: str,
    now: datetime,
    *,
    message_id: int | None = None,
) -> bool:
    """Carry out a verdict on a channel. Returns True if anything changed."""
    if verdict == Verdict.STOPPED:
        changed = subscriptions.stop(session, channel, reason, secret, now)
    elif verdict == Verdict.SUPPRESSED:
        changed = suppress_channel(session, channel, reason, secret, now)
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
    session: Session, channel: Channel, reason: str, secret: str, now: datetime
) -> bool:
    """The provider cannot reach this address: no more sends to it, from any path.

    The channel goes `suppressed`, the address onto Steady's own do-not-contact
    list, and its scheduled nudges are cancelled with a re-plan, so the planner
    moves the person to their other confirmed channel if they have one. A channel
    the person stopped stays `stopped`: that is their choice, and it says more.
    """
    subscriptions.suppress(session, channel.address, channel.kind, reason, secret, now)
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
