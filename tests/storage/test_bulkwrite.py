"""Writing and finding thousands of rows at once (service.storage.bulkwrite), as an
import does: what goes in is what an ORM insert would have written, and a lookup of
many values finds exactly those present, whatever the values hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import Table, select

from service.storage.bulkwrite import insert_rows, one_of
from service.storage.db import session_factory
from service.storage.models import Channel, Message, Subscriber

NOW = datetime(2026, 12, 5, 12, 0, 0, 123456, tzinfo=UTC)


def table(model: type) -> Table:
    return model.__table__  # type: ignore[attr-defined, no-any-return]


def test_rows_go_in_with_their_shared_values_and_the_columns_defaults(database_url: str) -> None:
    paris = NOW.astimezone(timezone(timedelta(hours=1)))  # the same instant, stored as UTC
    with session_factory(database_url).begin() as session:
        ids = insert_rows(
            session,
            table(Subscriber),
            ("timezone", "next_plan_at"),
            [("Europe/Paris", paris), ("UTC", None)],
            {"created_at": NOW, "cadence_per_week": 3},
        )
        channel_ids = insert_rows(
            session,
            table(Channel),
            ("subscriber_id", "kind", "address", "address_key", "consent_evidence"),
            [(ids[0], "sms", "+12025550100", "+12025550100", {"line": 2, "note": "a\nb"})],
            {"status": "pending", "created_at": NOW, "updated_at": NOW},
        )
        none = insert_rows(
            session,
            table(Message),
            ("subscriber_id", "channel_id", "channel"),
            [(ids[0], channel_ids[0], "sms")],
            {"kind": "confirm", "template": "confirm", "rule": "r", "priority": 0}
            | {"scheduled_for": NOW, "created_at": NOW, "updated_at": NOW},
            ids=False,
        )
        assert none == []
    with session_factory(database_url)() as session:
        first, second = (session.get(Subscriber, i) for i in ids)
        assert first is not None
        assert second is not None
        assert (first.timezone, first.next_plan_at, first.created_at) == ("Europe/Paris", NOW, NOW)
        assert (second.next_plan_at, second.cadence_per_week, second.hour_start) == (None, 3, 8)
        channel = session.get(Channel, channel_ids[0])
        assert channel is not None
        assert channel.consent_evidence == {"line": 2, "note": "a\nb"}
        assert channel.confirm_evidence is None
        message = session.scalar(select(Message))
        assert message is not None
        assert (message.channel_id, message.status) == (channel.id, "scheduled")
        assert (message.attempts, message.scheduled_for) == (0, NOW)


def test_one_of_finds_exactly_the_values_present_whatever_they_hold(database_url: str) -> None:
    stored = ["+12025550100", "a@example.com", "two\nlines", ""]
    with session_factory(database_url).begin() as session:
        ids = insert_rows(session, table(Subscriber), ("timezone",), [("UTC",)] * len(stored))
        insert_rows(
            session,
            table(Channel),
            ("subscriber_id", "kind", "address", "address_key", "status"),
            [(i, "sms", a, a, "active") for i, a in zip(ids, stored, strict=True)],
            {"created_at": NOW, "updated_at": NOW},
        )
    with session_factory(database_url)() as session:

        def found(values: list[str]) -> set[str]:
            where = one_of(session, Channel.address, values)
            return set(session.scalars(select(Channel.address).where(where)))

        many = [f"+1202555{n:04d}" for n in range(3000)]
        assert found(many) == {"+12025550100"}
        assert found(["a@example.com", "b@example.com"]) == {"a@example.com"}
        assert found(["two\nlines", "two"]) == {"two\nlines"}, "a value holding the separator"
        assert found([""]) == {""}
        assert found(["", "a@example.com"]) == {"", "a@example.com"}
