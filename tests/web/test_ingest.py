"""Group commit of status callbacks (`service.web.ingest`), on SQLite and PostgreSQL.

Concurrent callbacks share transactions; each request still learns its own
result; duplicates stay duplicates inside one batch; one report the database
refuses fails alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.addresses import AddressHasher
from service.providers.base import DeliveryReport
from service.providers.twilio.webhooks import status_report
from service.sending.feedback import apply_reports
from service.storage.db import session_factory, upgrade
from service.storage.models import Channel, DeliveryEvent, Message, MessageStatus, Subscriber
from service.web.ingest import GroupCommit

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def sent_messages(sessions: sessionmaker[Session], count: int) -> list[Message]:
    with sessions() as session:
        subscriber = Subscriber(timezone="America/New_York")
        channel = Channel(
            subscriber=subscriber, kind="sms", address="+12125550100", status="active"
        )
        session.add(channel)
        session.flush()
        messages = [
            Message(
                subscriber_id=subscriber.id,
                channel_id=channel.id,
                channel="sms",
                kind="restraint",
                template="restraint_01",
                rule="test",
                priority=1,
                status=MessageStatus.SENT,
                scheduled_for=NOW,
                provider_id=f"SM{n:032d}",
            )
            for n in range(count)
        ]
        session.add_all(messages)
        session.commit()
        return messages


def report(message: Message, status: str = "delivered", **extra: Any) -> DeliveryReport:
    params = {"MessageSid": str(message.provider_id), "MessageStatus": status}
    parsed = status_report(params, str(message.id))
    assert parsed is not None
    return replace(parsed, payload=extra.get("payload", {"MessageStatus": status}))


def ingest(sessions: sessionmaker[Session], sizes: list[int]) -> GroupCommit[DeliveryReport, str]:
    def apply(reports: Sequence[DeliveryReport]) -> list[str]:
        sizes.append(len(reports))
        with sessions.begin() as session:
            return apply_reports(session, reports, AddressHasher("secret"), NOW)

    return GroupCommit(apply)


async def submit_all(
    commit: GroupCommit[DeliveryReport, str], reports: list[DeliveryReport]
) -> list[str | BaseException]:
    return await asyncio.gather(*(commit.submit(r) for r in reports), return_exceptions=True)


@pytest.fixture
def sessions(database_url: str) -> sessionmaker[Session]:
    upgrade(database_url)
    return session_factory(database_url)


def test_concurrent_callbacks_share_transactions_and_each_gets_its_result(
    sessions: sessionmaker[Session],
) -> None:
    messages = sent_messages(sessions, 40)
    # Twilio retries: the first five callbacks arrive twice, interleaved.
    reports = [report(m) for m in messages] + [report(m) for m in messages[:5]]
    sizes: list[int] = []
    results = asyncio.run(submit_all(ingest(sessions, sizes), reports))

    assert results[:40] == ["applied"] * 40
    assert results[40:] == ["duplicate"] * 5
    assert sum(sizes) == 45
    assert len(sizes) < 45  # grouped: fewer transactions than callbacks
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(DeliveryEvent)) == 40
        statuses = set(session.scalars(select(Message.status)))
    assert statuses == {MessageStatus.DELIVERED}


def test_a_report_the_database_refuses_fails_alone(sessions: sessionmaker[Session]) -> None:
    messages = sent_messages(sessions, 6)
    reports = [report(m) for m in messages]
    # A payload that cannot be stored as JSON: the whole batch's insert fails.
    poison = report(messages[3], payload={"raw": object()})
    reports[3] = poison
    sizes: list[int] = []
    results = asyncio.run(submit_all(ingest(sessions, sizes), reports))

    assert [r for i, r in enumerate(results) if i != 3] == ["applied"] * 5
    assert isinstance(results[3], Exception)
    with sessions() as session:
        stored = set(session.scalars(select(DeliveryEvent.message_id)))
        left = session.get(Message, messages[3].id)
    assert stored == {m.id for i, m in enumerate(messages) if i != 3}
    assert left is not None
    assert left.status == MessageStatus.SENT  # nothing applied for the refused one


def test_one_callback_alone_goes_straight_through(sessions: sessionmaker[Session]) -> None:
    (message,) = sent_messages(sessions, 1)
    sizes: list[int] = []
    commit = ingest(sessions, sizes)

    async def one_by_one() -> list[str]:
        return [await commit.submit(report(message, "sent")), await commit.submit(report(message))]

    assert asyncio.run(one_by_one()) == ["stale", "applied"]
    assert sizes == [1, 1]
