"""`steady archive`: old finished messages and their delivery events leave the live
tables for the archive tables, whole; in-flight and recent ones stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from service.cli.main import app
from service.storage.archive import RetentionTooShort, archive, shared_columns
from service.storage.db import session_factory
from service.storage.models import DeliveryEvent, Message, Subscriber
from service.storage.models_records import DeliveryEventArchive, MessageArchive

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=200)
RECENT = NOW - timedelta(days=20)


def add_message(session: Any, subscriber: Subscriber, status: str, created: datetime) -> Message:
    message = Message(
        subscriber_id=subscriber.id,
        channel="sms",
        kind="checkin",
        template="checkin_01",
        rule="cadence",
        status=status,
        scheduled_for=created,
        created_at=created,
        updated_at=created,
        sent_at=created if status in ("sent", "delivered") else None,
        provider="twilio",
        provider_id=f"SM{created.timestamp():.0f}{status}",
    )
    session.add(message)
    session.flush()
    return message


def add_event(session: Any, message_id: int | None, key: str, received: datetime) -> None:
    session.add(
        DeliveryEvent(
            message_id=message_id,
            provider="twilio",
            event_key=key,
            event_type="delivered",
            received_at=received,
            payload={"MessageStatus": "delivered", "n": key},
        )
    )


def seed(url: str) -> dict[str, int]:
    ids: dict[str, int] = {}
    with session_factory(url).begin() as session:
        subscriber = Subscriber(timezone="UTC")
        session.add(subscriber)
        session.flush()
        for status in ("delivered", "failed", "cancelled", "scheduled", "sending", "unknown"):
            ids[f"old_{status}"] = add_message(session, subscriber, status, OLD).id
        ids["recent_delivered"] = add_message(session, subscriber, "delivered", RECENT).id
        add_event(session, ids["old_delivered"], "ev-old-1", OLD)
        add_event(session, ids["old_delivered"], "ev-old-2", OLD + timedelta(minutes=1))
        add_event(session, ids["old_unknown"], "ev-old-unknown", OLD)
        add_event(session, ids["recent_delivered"], "ev-recent", RECENT)
        add_event(session, None, "ev-orphan-old", OLD)
        add_event(session, None, "ev-orphan-recent", RECENT)
    return ids


def test_old_finished_messages_move_with_their_events_and_nothing_else(database_url: str) -> None:
    ids = seed(database_url)
    with session_factory(database_url)() as session:
        before = {
            m.id: {c: getattr(m, c) for c in shared_columns(Message, MessageArchive)}
            for m in session.scalars(select(Message))
        }

    report = archive(session_factory(database_url), NOW - timedelta(days=180), NOW, batch_size=2)

    moved = {ids["old_delivered"], ids["old_failed"], ids["old_cancelled"]}
    assert report.messages == 3
    assert report.delivery_events == 3  # two of old_delivered, the old orphan
    assert report.batches == 3  # 2 + 1 messages, then 1 orphan batch
    with session_factory(database_url)() as session:
        live = set(session.scalars(select(Message.id)))
        archived = {m.id: m for m in session.scalars(select(MessageArchive))}
        live_events = set(session.scalars(select(DeliveryEvent.event_key)))
        archived_events = {e.event_key: e for e in session.scalars(select(DeliveryEventArchive))}
    assert live == set(before) - moved
    assert set(archived) == moved
    for message_id, row in archived.items():
        assert {c: getattr(row, c) for c in before[message_id]} == before[message_id]
        assert row.archived_at == NOW
    assert live_events == {"ev-old-unknown", "ev-recent", "ev-orphan-recent"}
    assert set(archived_events) == {"ev-old-1", "ev-old-2", "ev-orphan-old"}
    assert archived_events["ev-old-1"].payload == {"MessageStatus": "delivered", "n": "ev-old-1"}
    assert archived_events["ev-old-1"].message_id == ids["old_delivered"]

    again = archive(session_factory(database_url), NOW - timedelta(days=180), NOW)
    assert (again.messages, again.delivery_events) == (0, 0), "a second run finds nothing"


def test_a_cutoff_inside_the_pacing_lookback_is_refused(sqlite_url: str) -> None:
    with pytest.raises(RetentionTooShort):
        archive(session_factory(sqlite_url), NOW - timedelta(days=7), NOW)


def test_the_archive_tables_have_every_column_of_the_live_tables() -> None:
    """A column added to `messages` or `delivery_events` must be added to its archive
    table as well (model and migration), or `steady archive` would drop its values."""
    for live, archived in ((Message, MessageArchive), (DeliveryEvent, DeliveryEventArchive)):
        live_columns = [c.key for c in live.__table__.c]  # type: ignore[attr-defined]
        assert shared_columns(live, archived) == live_columns, archived.__tablename__


def test_steady_archive_uses_the_retention_setting_and_before(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STEADY_DATABASE_URL", database_url)
    seed(database_url)
    now = datetime.now(UTC)
    with session_factory(database_url).begin() as session:
        subscriber = session.scalars(select(Subscriber)).first()
        assert subscriber is not None
        add_message(session, subscriber, "sent", now - timedelta(days=100))
    runner = CliRunner()

    # Retention 150 days: the 100-day-old message stays; the "200-day-old" ones (dated
    # from 2026-12-05) go if the clock agrees they are past 150 days.
    monkeypatch.setenv("STEADY_RETENTION_DAYS", "150")
    result = runner.invoke(app, ["archive"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    expected = 3 if now - timedelta(days=150) > OLD else 0
    assert f"archived {expected} messages" in result.stdout

    result = runner.invoke(
        app, ["archive", "--before", (now - timedelta(days=90)).isoformat()], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    with session_factory(database_url)() as session:
        assert session.scalar(select(func.count()).select_from(MessageArchive)) == 4
        left = set(session.scalars(select(Message.status)))
    assert left == {"scheduled", "sending", "unknown", "delivered"}  # + the 20-day-old one

    refused = runner.invoke(app, ["archive", "--before", now.isoformat()])
    assert refused.exit_code == 2
    assert "30 days" in refused.stderr
