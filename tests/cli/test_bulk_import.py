"""`steady subscribers import` of a few thousand rows, bad ones among them, on SQLite and
PostgreSQL: the batched path (COPY on PostgreSQL) keeps every rule of a signup."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from service.people import do_not_contact, importer, subscriptions
from service.storage.db import session_factory
from service.storage.models import Channel, Message, Subscriber
from tests.cli.operator import HASHER, invoke, write_csv

ROWS = 3000


def phone(index: int) -> str:
    return f"+1202{200 + index // 10000:03d}{index % 10000:04d}"


def test_thousands_of_rows_with_bad_ones_import_in_batches(
    db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(importer, "IMPORT_BATCH_ROWS", 700)  # several batches, odd edges
    now = datetime.now(UTC)
    with session_factory(db).begin() as session:
        # Known before the import: one pending signup, one stopped, one erased (suppressed).
        for address in ("known@example.com", phone(11)):
            subscriptions.subscribe(
                session,
                subscriptions.SignupRequest(
                    address if "+" in address else None,
                    address if "@" in address else None,
                    "UTC",
                    "web_form",
                    {},
                ),
                HASHER,
                now,
            )
        do_not_contact.suppress(session, "erased@example.com", "email", "erased", HASHER, now)

    lines: list[str] = []
    bad: dict[int, str] = {}  # file line -> field named
    expect_pending = expect_active = expect_people = expect_skipped = 0
    for index in range(ROWS):
        line = index + 2  # after the header
        if index % 97 == 5:
            lines.append(f"555{index},,,")
            bad[line] = "phone"
        elif index % 211 == 7:
            lines.append(f"{phone(index)},,Mars/Base,")
            bad[line] = "timezone"
        elif index == 1500:
            lines.append(f"{phone(index)},,,,extra")
            bad[line] = "row"
        elif index in (11, 2999):  # known: a signup made it; and a repeat of row 10's phone
            lines.append(f"{phone(11 if index == 11 else 10)},,,")
            expect_skipped += 1
        elif index == 700:  # a new phone plus a known email: only the phone goes in
            lines.append(f"{phone(index)},known@example.com,,")
            expect_pending += 1
            expect_people += 1
        elif index == 701:
            lines.append(",erased@example.com,,")
            expect_skipped += 1
        elif index % 10 == 3:
            lines.append(f"{phone(index)},p{index}@example.com,America/Chicago,form {index}")
            expect_active += 2
            expect_people += 1
        else:
            lines.append(f"{phone(index)},,,")
            expect_pending += 1
            expect_people += 1
    path = write_csv(tmp_path, "\n".join(lines) + "\n")

    result = invoke("subscribers", "import", str(path))

    assert result.exit_code == 1
    named = {int(n): field for n, field in re.findall(r"line (\d+): (\w+):", result.stderr)}
    assert named == bad
    assert (
        f"{ROWS} rows: {expect_people} imported ({expect_pending} channels pending "
        f"confirmation, {expect_active} active with evidence), {expect_skipped} already known "
        f"or suppressed, {len(bad)} bad"
    ) in result.stdout
    with session_factory(db)() as session:
        people = session.scalar(select(func.count()).select_from(Subscriber))
        by_status = dict(
            session.execute(select(Channel.status, func.count()).group_by(Channel.status)).all()
        )
        confirms = session.execute(
            select(Message.channel_id, Channel.status, Message.status, Message.scheduled_for)
            .join(Channel, Channel.id == Message.channel_id)
            .where(Message.kind == "confirm")
        ).all()
        evidence_row = session.scalar(select(Channel).where(Channel.address == phone(13)))
        assert evidence_row is not None
        assert evidence_row.consent_evidence is not None
        assert evidence_row.consent_evidence["line"] == 15
        assert evidence_row.consent_evidence["evidence"] == "form 13"
        assert evidence_row.subscriber.timezone == "America/Chicago"
        assert evidence_row.subscriber.next_plan_at is not None
        assert evidence_row.subscriber.cadence_per_week == 7
        assert evidence_row.subscriber.hour_start == 8, "column defaults filled in"
        pending_row = session.scalar(select(Channel).where(Channel.address == phone(12)))
        assert pending_row is not None
        assert pending_row.subscriber.timezone == "America/New_York", "inferred from 202"
        assert pending_row.subscriber.next_plan_at is None
    assert people == expect_people + 2  # the two signups made before
    assert by_status == {"pending": expect_pending + 2, "active": expect_active}
    assert len(confirms) == expect_pending + 2, "one confirmation per pending channel"
    assert {(c[1], c[2]) for c in confirms} == {("pending", "scheduled")}
