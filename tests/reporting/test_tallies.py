"""Running tallies (issue 11): the counts `/metrics` and the admin figures read stay equal
to the tables whatever writes them, and reading them costs the same at any size."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, event, func, insert, select, update
from sqlalchemy.orm import Session

from service.people import subscriptions
from service.reporting import tallies
from service.storage.models import Channel, DeliveryEvent, Message, Subscriber
from service.storage.models_records import TallyDelta
from tests.support.world import Harness, enrol_one_person, make_settings

NOON = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
ADMIN_TOKEN = "admin-token-for-tests-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def counted(session: Session) -> dict[tuple[str, str, str], int]:
    """The truth, counted the slow way."""
    rows = session.execute(
        select(Message.kind, Message.channel, Message.status, func.count()).group_by(
            Message.kind, Message.channel, Message.status
        )
    )
    return {(kind, channel, status): int(n) for kind, channel, status, n in rows}


def tallied(session: Session) -> dict[tuple[str, str, str], int]:
    return {(k, c, s): n for k, c, s, n in tallies.message_counts(session)}


def events_counted(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(DeliveryEvent.event_type, func.count()).group_by(DeliveryEvent.event_type)
    )
    return {event_type: int(n) for event_type, n in rows}


def assert_tallies_match(harness: Harness) -> None:
    with harness.runtime.sessions() as session:
        assert tallied(session) == counted(session)
        assert tallies.delivery_event_counts(session) == events_counted(session)


def test_tallies_follow_every_way_messages_change(database_url: str) -> None:
    harness = Harness(make_settings(database_url), now=NOON)
    enrol_one_person(harness, "+12125550142", "sam@example.com")
    assert_tallies_match(harness)
    harness.tick()  # the planner writes (COPY on PostgreSQL), the dispatcher claims in bulk
    harness.tick()
    harness.text_in("+12125550142", "ME")  # a TwiML reply logged as a message
    assert_tallies_match(harness)

    with harness.runtime.sessions.begin() as session:  # a bulk status change
        person = session.scalars(select(Subscriber)).one()
        subscriptions.cancel_pending_nudges(session, person.id, harness.now)
        session.execute(update(Message).where(Message.status == "sent").values(status="delivered"))
        session.execute(
            insert(DeliveryEvent),
            [
                {
                    "provider": "twilio",
                    "event_key": f"k{n}",
                    "event_type": "delivered",
                    "received_at": NOON,
                    "payload": {},
                }
                for n in range(3)
            ],
        )
    assert_tallies_match(harness)

    with harness.runtime.sessions.begin() as session:  # erasure: cascades to messages
        session.execute(delete(Subscriber))
        session.execute(delete(DeliveryEvent).where(DeliveryEvent.event_key == "k0"))
    assert_tallies_match(harness)
    with harness.runtime.sessions() as session:
        assert tallied(session) == {}


@pytest.mark.postgres
def test_folding_keeps_the_counts_and_empties_the_deltas(postgres_url: str) -> None:
    harness = Harness(make_settings(postgres_url), now=NOON)
    enrol_one_person(harness, "+12125550142", "sam@example.com")
    harness.tick()
    with harness.runtime.sessions() as session:
        before = tallied(session)
        assert session.scalar(select(func.count()).select_from(TallyDelta))
    with harness.runtime.sessions.begin() as session:
        tallies.fold(session)
    with harness.runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(TallyDelta)) == 0
        assert tallied(session) == before == counted(session)


# --- constant cost --------------------------------------------------------------------------


def add_messages(harness: Harness, n: int) -> None:
    """`n` old messages of a confirmed person, in a spread of statuses and kinds."""
    with harness.runtime.sessions.begin() as session:
        channel = session.scalars(select(Channel).where(Channel.kind == "sms")).one()
        statuses = ("delivered", "sent", "failed", "expired", "cancelled")
        kinds = ("restraint", "tip", "activity")
        session.execute(
            insert(Message),
            [
                {
                    "subscriber_id": channel.subscriber_id,
                    "channel_id": channel.id,
                    "channel": "sms",
                    "kind": kinds[i % len(kinds)],
                    "template": "t",
                    "rule": "r",
                    "priority": 1,
                    "status": statuses[i % len(statuses)],
                    "scheduled_for": NOON - timedelta(days=30, minutes=i),
                    "created_at": NOON - timedelta(days=30, minutes=i),
                    "updated_at": NOON - timedelta(days=30, minutes=i),
                    "sent_at": NOON - timedelta(days=30, minutes=i),
                }
                for i in range(n)
            ],
        )


def statements_of(harness: Harness, path: str) -> list[str]:
    engine = harness.runtime.sessions.kw["bind"]
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        assert harness.client.get(path, headers=BEARER).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


@pytest.mark.parametrize("path", ["/metrics", "/admin/api/stats"])
def test_figures_read_the_same_statements_at_any_size(database_url: str, path: str) -> None:
    harness = Harness(make_settings(database_url, STEADY_ADMIN_TOKEN=ADMIN_TOKEN), now=NOON)
    enrol_one_person(harness, "+12125550142", "sam@example.com")
    harness.tick()
    # The SMS budget's figures (subscribers and channels, never messages) are worked out
    # by the first request and then at most once a minute, in the background
    # (tests/sending/test_budget_figures.py): both requests measured here come after.
    statements_of(harness, path)
    small = statements_of(harness, path)
    add_messages(harness, 3000)
    large = statements_of(harness, path)
    assert Counter(large) == Counter(small), "the same statements, whatever the size"
    reading_messages = [s for s in large if "FROM messages" in s]
    # Only the queue's lag reads messages: scheduled and due rows, a partial index.
    assert all("messages.status = " in s and "scheduled_for <=" in s for s in reading_messages)
    with harness.runtime.sessions() as session:
        assert sum(tallied(session).values()) >= 3000
