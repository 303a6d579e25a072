"""Delivery reports into state: verify first (in the web layer), then drop
duplicates by a unique key, then apply the transition, and keep the raw payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service import subscriptions
from service.models import Channel, DeliveryEvent, Message
from service.status import TWILIO_STATUS, can_move

log = structlog.get_logger(__name__)

# Twilio 21610: the recipient has replied STOP to this sender at the carrier; it is
# their STOP, so it is ours too (PRODUCT.md "Delivery feedback").
TWILIO_OPTED_OUT = "21610"


@dataclass(frozen=True)
class StatusReport:
    provider: str
    event_key: str
    provider_id: str | None
    our_id: int | None
    status: str
    error_code: str | None
    payload: dict[str, Any]


def find_message(session: Session, report: StatusReport) -> Message | None:
    if report.our_id is not None:
        message = session.get(Message, report.our_id)
        # Our id rides in a URL we built; check it against the provider's id when both exist.
        if message is not None and (message.provider_id in (None, report.provider_id)):
            return message
    if report.provider_id:
        return session.scalar(select(Message).where(Message.provider_id == report.provider_id))
    return None


def apply_twilio_status(session: Session, report: StatusReport, secret: str, now: datetime) -> str:
    """Record one status callback; returns 'applied', 'duplicate', 'stale' or 'unknown_message'."""
    message = find_message(session, report)
    event = DeliveryEvent(
        message_id=message.id if message else None,
        provider=report.provider,
        event_key=report.event_key,
        event_type=report.status,
        error_code=report.error_code,
        occurred_at=now,
        received_at=now,
        payload=report.payload,
    )
    try:
        with session.begin_nested():
            session.add(event)
    except IntegrityError:
        return "duplicate"
    if message is None:
        return "unknown_message"
    new_status = TWILIO_STATUS.get(report.status)
    if new_status is None or not can_move(message.status, new_status):
        return "stale"
    message.status = new_status
    message.updated_at = now
    if report.provider_id and message.provider_id is None:
        message.provider_id = report.provider_id
    if report.error_code:
        message.error_code = report.error_code
    if report.error_code == TWILIO_OPTED_OUT and message.channel_id is not None:
        channel = session.get(Channel, message.channel_id)
        if channel is not None:
            subscriptions.stop(session, channel, "carrier_opt_out_21610", secret, now)
    log.info("status_applied", message_id=message.id, status=new_status, code=report.error_code)
    return "applied"
