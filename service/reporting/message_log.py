"""Read-only views for the command line: the message log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from service.settings import Settings
from service.storage.db import session_factory
from service.storage.models import Channel, Message


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def message_log(settings: Settings, address: str | None = None) -> list[dict[str, Any]]:
    """Outbound messages, oldest first, optionally for one address."""
    query = (
        select(Message, Channel.address)
        .outerjoin(Channel, Channel.id == Message.channel_id)
        .order_by(Message.created_at, Message.id)
    )
    if address is not None:
        query = query.where(Channel.address == address)
    with session_factory(settings.database_url)() as session:
        return [
            {
                "id": message.id,
                "subscriber_id": message.subscriber_id,
                "channel": message.channel,
                "to": to,
                "kind": message.kind,
                "template": message.template,
                "rule": message.rule,
                "status": message.status,
                "scheduled_for": _iso(message.scheduled_for),
                "sent_at": _iso(message.sent_at),
                "provider_id": message.provider_id,
                "error_code": message.error_code,
            }
            for message, to in session.execute(query)
        ]
