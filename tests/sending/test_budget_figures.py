"""The SMS budget figures behind `/metrics` and the admin pages cost the same however
many people subscribe: worked out once, then refreshed in the background."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event

from service.sending.capacity import BudgetFigures, estimate
from service.storage.db import session_factory
from service.storage.models import Channel, Subscriber
from tests.support.world import make_settings

NOW = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.seconds = 1000.0

    def __call__(self) -> float:
        return self.seconds


def add_people(database_url: str, count: int, start: int) -> None:
    with session_factory(database_url).begin() as session:
        for n in range(start, start + count):
            person = Subscriber(timezone="America/New_York", created_at=NOW)
            person.channels.append(
                Channel(kind="sms", address=f"+1202555{n:04d}", status="active", confirmed_at=NOW)
            )
            session.add(person)


@pytest.fixture
def statements(database_url: str) -> Any:
    sessions = session_factory(database_url)
    engine = sessions.kw["bind"]
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", count)
    yield sessions, seen
    event.remove(engine, "before_cursor_execute", count)


def test_requests_within_a_minute_read_nothing_and_later_ones_do_not_wait(
    database_url: str, statements: Any
) -> None:
    sessions, seen = statements
    settings = make_settings(database_url)
    add_people(database_url, 30, 0)
    clock = Clock()
    figures = BudgetFigures(settings, sessions, lambda: NOW, monotonic=clock)

    first = figures.report()
    assert seen, "the first request works the figures out"
    assert first["subscribers"]["sms_active"] == 30

    seen.clear()
    clock.seconds += 59
    add_people(database_url, 20, 100)
    seen.clear()
    assert figures.report() is first
    assert seen == [], "a request within the minute runs no query"

    clock.seconds += 2
    stale = figures.report()
    assert stale is first, "a request after it gets the last figures at once"
    figures.wait_for_refresh()
    fresh = figures.report()
    assert fresh["subscribers"]["sms_active"] == 50
    with sessions() as session:
        assert fresh == estimate(settings, session, NOW)
