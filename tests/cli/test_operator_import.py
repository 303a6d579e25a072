"""`steady subscribers import`: bad rows named by line and field, batches redone, no recontact."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from service.people import do_not_contact, subscriptions
from service.storage.db import session_factory
from service.storage.models import Channel, Message, Subscriber
from tests.cli.operator import HASHER, count, invoke, write_csv


def test_import_names_bad_rows_by_line_and_field_and_imports_the_good_ones(
    db: str, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path,
        "(212) 555-0142,,America/Chicago,\n"  # line 2: good, pending
        ",kim@example.com,,signed paper form 2026-01-05 ref 77\n"  # line 3: good, evidence
        "555,,,\n"  # line 4: bad phone
        ",not-an-email,,\n"  # line 5: bad email
        "+12125550143,,Mars/Olympus_Mons,\n"  # line 6: bad timezone
        ",,,\n"  # line 7: empty
        # line 8: good, two channels: two people until one proves both (issue 11)
        "+1 212 555 0144,lee@example.org,Europe/London,\n",
    )

    result = invoke("subscribers", "import", str(path))

    assert result.exit_code == 1, result.output
    stderr = result.stderr
    assert "line 4: phone:" in stderr
    assert "line 5: email:" in stderr
    assert "line 6: timezone:" in stderr
    assert "line 7: row: empty row" in stderr
    for good_line in ("line 2:", "line 3:", "line 8:"):
        assert good_line not in stderr
    assert count(db, Subscriber) == 4
    with session_factory(db)() as session:
        channels = {c.address: c for c in session.scalars(select(Channel))}
        confirms = session.scalars(select(Message).where(Message.kind == "confirm")).all()
        kim = channels["kim@example.com"]
        assert kim.subscriber.next_plan_at is not None
        assert channels["+12125550142"].subscriber.timezone == "America/Chicago"
    assert set(channels) == {"+12125550142", "kim@example.com", "+12125550144", "lee@example.org"}
    pending = [c for c in channels.values() if c.status == "pending"]
    assert len(pending) == 3
    assert all(c.consent_method == "import" for c in pending)
    assert sorted(m.channel_id for m in confirms) == sorted(c.id for c in pending)
    assert kim.status == "active"
    assert kim.consent_method == "import_with_evidence"
    assert kim.consent_evidence is not None
    assert kim.consent_evidence["evidence"] == "signed paper form 2026-01-05 ref 77"
    assert kim.consent_evidence["line"] == 3
    assert count(db, Message, Message.channel_id == kim.id) == 0, "no confirmation with evidence"


def test_import_of_only_good_rows_exits_0_and_counts(db: str, tmp_path: Path) -> None:
    path = write_csv(tmp_path, "+12125550142,,,\n,sam@example.com,America/Denver,\n")
    result = invoke("subscribers", "import", str(path))
    assert result.exit_code == 0, result.output
    assert "2 rows: 2 imported" in result.stdout
    assert count(db, Channel, Channel.status == "pending") == 2


def test_import_refuses_a_file_without_the_header(db: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("+12125550142,,\n", encoding="utf-8")
    result = invoke("subscribers", "import", str(path))
    assert result.exit_code == 2
    assert "header" in result.stderr
    assert count(db, Subscriber) == 0


def test_a_batch_refused_by_the_database_is_redone_row_by_row_naming_failures(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signup takes one of the batch's addresses between the batch's checks and its
    write (a real race, timed by a hook): the database refuses the batch, the rows go
    in one by one, the raced one is left as the signup made it, and a row that fails
    half-way (after its channels are written) leaves nothing behind."""
    from service.people import importer

    real_queue = subscriptions.queue_confirmation
    real_plan = importer._plan

    def failing_queue(session: Any, channel: Channel, now: datetime) -> Message | None:
        # By now the row's subscriber and channels are flushed: the failure is mid-way.
        if channel.address == "boom@example.com":
            raise RuntimeError("disk full")
        return real_queue(session, channel, now)

    def plan_then_race(session: Any, batch: Any, context: Any) -> Any:
        planned = real_plan(session, batch, context)
        with session_factory(db).begin() as other:
            request = subscriptions.SignupRequest(None, "raced@example.com", "UTC", "web_form", {})
            subscriptions.subscribe(other, request, HASHER, datetime.now(UTC))
        return planned

    monkeypatch.setattr(subscriptions, "queue_confirmation", failing_queue)
    monkeypatch.setattr(importer, "_plan", plan_then_race)
    path = write_csv(
        tmp_path,
        "+12125550142,,,\n+12125550143,boom@example.com,,\n,after@example.com,,\n"
        ",raced@example.com,,\n",
    )

    result = invoke("subscribers", "import", str(path))

    assert result.exit_code == 1
    assert "line 3: row: not imported (RuntimeError: disk full)" in result.stderr
    assert "1 already known or suppressed" in result.stdout
    with session_factory(db)() as session:
        channels = {c.address: c.consent_method for c in session.scalars(select(Channel))}
    assert channels == {
        "+12125550142": "import",
        "after@example.com": "import",
        "raced@example.com": "web_form",
    }
    assert count(db, Subscriber) == 3
    assert count(db, Message) == 3


def test_import_never_recontacts_stopped_or_erased_addresses(db: str, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    with session_factory(db).begin() as session:
        subscriptions.subscribe(
            session,
            subscriptions.SignupRequest("+12125550142", None, "UTC", "web_form", {}),
            HASHER,
            now,
        )
        channel = session.scalars(select(Channel)).one()
        subscriptions.stop(session, channel, "stop", HASHER, now)
        do_not_contact.suppress(session, "gone@example.com", "email", "erased", HASHER, now)
    messages_before = count(db, Message)
    path = write_csv(tmp_path, "+12125550142,,,\n,gone@example.com,,form 3\n")

    result = invoke("subscribers", "import", str(path))

    assert result.exit_code == 0, result.output
    assert "0 imported" in result.stdout
    assert "2 already known or suppressed" in result.stdout
    assert count(db, Message) == messages_before, "no new confirmation to a stopped number"
    assert count(db, Channel, Channel.status == "stopped") == 1
    assert count(db, Channel, Channel.address == "gone@example.com") == 0
