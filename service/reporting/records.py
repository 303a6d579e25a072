"""How operators see a subscriber and a message: one serializer each, for the
admin API and the command line (`steady messages --json`).

Addresses are masked and no message bodies or notes a person wrote appear:
enough to recognise a case, not to copy a number out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from service.addresses import mask
from service.reporting.stats import SUBSCRIBER_STATUS_ORDER
from service.storage.models import Subscriber


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class MessageFields(Protocol):
    """What a message record reads: a `Message`, or a row selected with these columns."""

    @property
    def id(self) -> int: ...
    @property
    def channel(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def template(self) -> str: ...
    @property
    def rule(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def scheduled_for(self) -> datetime: ...
    @property
    def sent_at(self) -> datetime | None: ...
    @property
    def error_code(self) -> str | None: ...


def message_record(message: MessageFields) -> dict[str, Any]:
    """One outbound message: what went (or goes) where and why; never its body."""
    return {
        "id": message.id,
        "channel": message.channel,
        "kind": message.kind,
        "template": message.template,
        "rule": message.rule,
        "status": message.status,
        "scheduled_for": iso(message.scheduled_for),
        "sent_at": iso(message.sent_at),
        "error_code": message.error_code,
    }


def subscriber_record(subscriber: Subscriber) -> dict[str, Any]:
    """One subscriber as operators see them: masked addresses, no free text."""
    statuses = {channel.status for channel in subscriber.channels}
    status = next((s for s in SUBSCRIBER_STATUS_ORDER if s in statuses), None)
    return {
        "id": subscriber.id,
        "created_at": iso(subscriber.created_at),
        "timezone": subscriber.timezone,
        "status": status,
        "channels": [
            {
                "kind": channel.kind,
                "status": channel.status,
                "address": mask(channel.address),
                "status_reason": channel.status_reason,
                "confirmed_at": iso(channel.confirmed_at),
                "stopped_at": iso(channel.stopped_at),
            }
            for channel in subscriber.channels
        ],
        "cadence": {
            "per_week": subscriber.cadence_per_week,
            "hour_start": subscriber.hour_start,
            "hour_end": subscriber.hour_end,
        },
        "discreet": subscriber.discreet,
        "paused_until": iso(subscriber.paused_until),
        "flagged": subscriber.flagged_at is not None,
        "flagged_at": iso(subscriber.flagged_at),
        "flag_reason": subscriber.flag_reason,
    }
