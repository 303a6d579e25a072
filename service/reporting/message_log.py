"""Read-only views for the command line: the message log, streamed.

`steady messages` may be asked for millions of rows: they are fetched in pages from a
server-side cursor (`yield_per`) and handed on one by one, so memory stays flat
whatever the size of the log. Reads go to the replica when there is one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.reporting.records import message_record
from service.settings import Settings
from service.storage.db import read_session_factory
from service.storage.models import Channel, Message

LOG_YIELD_PER = 1000  # rows per round trip from the server-side cursor
LOG_COLUMNS = (
    "id",
    "subscriber_id",
    "channel",
    "to",
    "kind",
    "template",
    "rule",
    "status",
    "scheduled_for",
    "sent_at",
    "provider_id",
    "error_code",
)


@dataclass(frozen=True)
class LogFilter:
    address: str | None = None  # a normalised phone number or email
    status: str | None = None
    since: datetime | None = None  # created at or after
    limit: int | None = None


def iter_message_log(sessions: sessionmaker[Session], where: LogFilter) -> Iterator[dict[str, Any]]:
    """Outbound messages, oldest first (by creation), as INTERFACE.md §4's JSON objects.

    The operator's record of each (`message_record`, as the admin API shows it),
    plus what the command line may show and the admin API does not: the full
    address and the provider's id.
    """
    query = (
        select(
            Message.id,
            Message.subscriber_id,
            Message.channel,
            Channel.address,
            Message.kind,
            Message.template,
            Message.rule,
            Message.status,
            Message.scheduled_for,
            Message.sent_at,
            Message.provider_id,
            Message.error_code,
        )
        .outerjoin(Channel, Channel.id == Message.channel_id)
        .order_by(Message.created_at, Message.id)
        .execution_options(yield_per=LOG_YIELD_PER)
    )
    if where.address is not None:
        query = query.where(Channel.address == where.address)
    if where.status is not None:
        query = query.where(Message.status == where.status)
    if where.since is not None:
        query = query.where(Message.created_at >= where.since)
    if where.limit is not None:
        query = query.limit(where.limit)
    with sessions() as session:
        for row in session.execute(query):
            record = {
                **message_record(row),
                "subscriber_id": row.subscriber_id,
                "to": row.address,
                "provider_id": row.provider_id,
            }
            yield {column: record[column] for column in LOG_COLUMNS}


def message_log(settings: Settings, address: str | None = None) -> list[dict[str, Any]]:
    """The whole log for one address (or everyone), as a list: small logs only."""
    sessions = read_session_factory(settings.database_url, settings.database_replica_url)
    return list(iter_message_log(sessions, LogFilter(address=address)))
