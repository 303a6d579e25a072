"""`steady messages`: filters, a valid streamed JSON array, and flat memory."""

from __future__ import annotations

import json
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, update
from typer.testing import CliRunner

from service.cli.main import app
from service.reporting.message_log import LogFilter, iter_message_log
from service.storage.db import session_factory
from service.storage.models import Channel, Message, Subscriber
from tests.support.world import Harness, make_settings

START = datetime(2026, 11, 1, tzinfo=UTC)
STATUSES = ("sent", "delivered", "failed")


def seed(url: str, count: int) -> None:
    """`count` messages a minute apart, statuses in turn, to two addresses."""
    with session_factory(url).begin() as session:
        subscriber = Subscriber(timezone="UTC")
        for address in ("+12125550101", "+12125550102"):
            subscriber.channels.append(Channel(kind="sms", address=address, status="active"))
        session.add(subscriber)
        session.flush()
        channel_ids = [channel.id for channel in subscriber.channels]
        rows = [
            {
                "subscriber_id": subscriber.id,
                "channel_id": channel_ids[index % 2],
                "channel": "sms",
                "kind": "checkin",
                "template": "checkin_01",
                "rule": "cadence",
                "status": STATUSES[index % 3],
                "scheduled_for": START + timedelta(minutes=index),
                "created_at": START + timedelta(minutes=index),
                "updated_at": START + timedelta(minutes=index),
            }
            for index in range(count)
        ]
        session.execute(insert(Message), rows)


def run(url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *args: str) -> str:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STEADY_DATABASE_URL", url)
    result = CliRunner().invoke(app, ["messages", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_filters_combine_and_json_is_one_array(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seed(database_url, 30)
    since = (START + timedelta(minutes=10)).isoformat()
    out = run(
        database_url,
        monkeypatch,
        tmp_path,
        "--status",
        "delivered",
        "--since",
        since,
        "--to",
        "(212) 555-0102",
        "--limit",
        "3",
        "--json",
    )
    rows = json.loads(out)
    # delivered = index % 3 == 1; to ...0102 = odd index; since = index >= 10: 13, 19, 25
    assert [row["scheduled_for"][11:16] for row in rows] == ["00:13", "00:19", "00:25"]
    assert {row["status"] for row in rows} == {"delivered"}
    assert {row["to"] for row in rows} == {"+12125550102"}
    assert set(rows[0]) == {
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
    }
    assert (
        json.loads(run(database_url, monkeypatch, tmp_path, "--json", "--status", "expired")) == []
    )


def test_text_output_streams_one_line_per_message(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seed(database_url, 7)
    lines = run(database_url, monkeypatch, tmp_path, "--status", "failed").splitlines()
    assert lines[0].split()[:3] == ["id", "to", "kind"]
    assert [line.split()[5] for line in lines[1:]] == ["failed", "failed"]


def test_a_bad_status_or_time_is_a_usage_error(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STEADY_DATABASE_URL", sqlite_url)
    for args in (["--status", "lost"], ["--since", "yesterday"], ["--limit", "-1"]):
        assert CliRunner().invoke(app, ["messages", *args]).exit_code == 2, args


def test_memory_stays_flat_however_many_rows(database_url: str) -> None:
    """Rows come from a cursor in pages: reading 20,000 holds no more than reading 2,000."""
    seed(database_url, 20_000)
    sessions = session_factory(database_url)

    def peak(limit: int) -> int:
        tracemalloc.start()
        count = sum(1 for _ in iter_message_log(sessions, LogFilter(limit=limit)))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert count == limit
        return top

    peak(100)  # warm caches (compiled statements, type handlers)
    small, large = peak(2_000), peak(20_000)
    assert large < small * 2 + 1_000_000, (small, large)


def test_the_log_and_the_admin_api_show_a_message_alike(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """One serializer (`reporting.records.message_record`): every field the admin API
    shows of a message, `steady messages --json` shows with the same value."""
    seed(database_url, 6)
    with session_factory(database_url).begin() as session:
        session.execute(
            update(Message)
            .where(Message.status != "sent")
            .values(sent_at=START + timedelta(hours=1), error_code="30003")
        )
    token = "admin-token-for-the-message-log-test-0123456789"
    harness = Harness(make_settings(database_url, STEADY_ADMIN_TOKEN=token))
    [subscriber_id] = {
        row["subscriber_id"]
        for row in json.loads(run(database_url, monkeypatch, tmp_path, "--json"))
    }
    api = harness.client.get(
        f"/admin/api/subscribers/{subscriber_id}/messages",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert api.status_code == 200
    shown = api.json()["messages"]
    logged = {
        row["id"]: row for row in json.loads(run(database_url, monkeypatch, tmp_path, "--json"))
    }
    assert len(shown) == len(logged) == 6
    assert {row["error_code"] for row in shown} == {None, "30003"}
    for record in shown:
        assert {key: logged[record["id"]][key] for key in record} == record
