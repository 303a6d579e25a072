"""Seeding a crash-safety run: subscribers and their due nudges, planned by the app's planner."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from service.channels import ChannelKind
from service.pacing.policy import pacing_policy
from service.pacing.window import midday_zone
from service.sending.planner import plan_due
from service.storage.db import session_factory
from service.storage.models import Channel, ChannelStatus, Message, MessageStatus, Subscriber
from tests.support.world import make_settings

# --- seeding ---------------------------------------------------------------------------


def phone_numbers(group: int, count: int) -> list[str]:
    """Distinct, valid-looking US numbers; `group` keeps the groups of a test apart."""
    return [f"+1202{group:03d}{index:04d}" for index in range(count)]


def add_subscribers(database_url: str, phones: Iterable[str], *, due: bool) -> list[int]:
    """Confirmed SMS subscribers in a mid-day zone, due for planning now or not yet.

    The planner gives each one its welcome nudge, due at once: one message per
    recipient, so "no recipient twice" is the same as "no message twice".
    """
    now = datetime.now(UTC)
    zone = midday_zone(now)
    ids = []
    with session_factory(database_url)() as session:
        for phone in phones:
            subscriber = Subscriber(timezone=zone, next_plan_at=now if due else None)
            subscriber.channels.append(
                Channel(
                    kind=ChannelKind.SMS,
                    address=phone,
                    status=ChannelStatus.ACTIVE,
                    consent_at=now,
                    consent_method="import",
                    confirmed_at=now,
                )
            )
            session.add(subscriber)
            session.flush()
            ids.append(subscriber.id)
        session.commit()
    return ids


def seed_due_nudges(database_url: str, phones: list[str]) -> list[int]:
    """Add subscribers and plan them here (the app's own planner); the message ids."""
    subscriber_ids = add_subscribers(database_url, phones, due=True)
    settings = make_settings(database_url)
    now = datetime.now(UTC)
    plan_due(session_factory(database_url), pacing_policy(settings), now)
    with session_factory(database_url)() as session:
        rows = session.execute(
            select(Message.id, Message.scheduled_for).where(
                Message.subscriber_id.in_(subscriber_ids)
            )
        ).all()
    assert len(rows) == len(phones), f"planned {len(rows)} nudges for {len(phones)} subscribers"
    late = [mid for mid, at in rows if at > now + timedelta(seconds=5)]
    assert not late, f"nudges not due now (is {midday_zone(datetime.now(UTC))} mid-day?): {late}"
    return [mid for mid, _ in rows]


def make_due_for_planning(database_url: str, subscriber_ids: list[int]) -> None:
    """Hand these subscribers to the workers' planner (beat's `steady.plan`)."""
    with session_factory(database_url)() as session:
        session.execute(
            update(Subscriber)
            .where(Subscriber.id.in_(subscriber_ids))
            .values(next_plan_at=datetime.now(UTC))
        )
        session.commit()


def skip_backoff(database_url: str, message_ids: Iterable[int] | None = None) -> list[int]:
    """Make retries waiting out their backoff due now; returns their ids.

    Only the waiting is shortened: the retry was scheduled by the dispatcher (and
    checked by the caller), and the dispatcher still decides what happens next.
    """
    condition = [Message.status == MessageStatus.SCHEDULED, Message.attempts >= 1]
    if message_ids is not None:
        condition.append(Message.id.in_(list(message_ids)))
    with session_factory(database_url)() as session:
        ids = session.scalars(
            update(Message)
            .where(*condition)
            .values(scheduled_for=datetime.now(UTC))
            .returning(Message.id)
        ).all()
        session.commit()
    return list(ids)
