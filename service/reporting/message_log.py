"""Read-only views for the command line: the message log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from service.reporting.records import message_record
from service.settings import Settings
from service.storage.db import session_factory
from service.storage.models import Channel, Message


def message_log(settings: Settings, address: str | None = None) -> list[dict[str, Any]]:
    """Outbound messages, oldest first, optionally for one address.

    The operator's record of each (`message_record`), plus what the command line
    may show and the admin API does not: the full address and the provider's id.
    """
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
                **message_record(message),
                "subscriber_id": message.subscriber_id,
                "to": to,
                "provider_id": message.provider_id,
            }
            for message, to in session.execute(query)
        ]
