"""A subscriber over simulated weeks (issue 3's scenario): ME logs tilt the mix to
restraint, THEM brings a tip at once, STOP brings silence and START brings nudges
back. (30005 moving nudges to email and a bounce suppressing email are walked
through with the real SDKs in tests/sending/feedback/.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from service.storage.models import Message
from tests.support.world import Harness, make_settings

PHONE = "+12125550142"  # New York
MONDAY_9AM = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
STEP = timedelta(minutes=30)


def run_until(harness: Harness, end: datetime) -> list[int]:
    """Tick every half hour until `end`; return the ids of messages sent."""
    sent: list[int] = []
    while harness.now < end:
        report = harness.tick(harness.now + STEP)
        sent += [o.message_id for o in report.dispatch.outcomes if o.status == "sent"]
    return sent


def nudge_kinds(harness: Harness, ids: list[int]) -> list[str]:
    with harness.runtime.sessions() as session:
        return list(
            session.scalars(
                select(Message.kind)
                .where(Message.id.in_(ids), Message.priority == 1)
                .order_by(Message.id)
            )
        )


def restraint_share(kinds: list[str]) -> float:
    return kinds.count("restraint") / len(kinds)


def test_weeks_of_logs_shape_the_nudges_and_stop_start_are_honoured(database_url: str) -> None:
    harness = Harness(make_settings(database_url), now=MONDAY_9AM)
    harness.client.post("/subscribe", json={"phone": PHONE, "consent": True})
    harness.tick()
    harness.text_in(PHONE, "YES")

    # Week 1: no logs. The normal mix.
    week1 = nudge_kinds(harness, run_until(harness, MONDAY_9AM + timedelta(days=7)))
    assert len(week1) >= 6

    # Week 2: three ME logs, two days apart, in the evening.
    week2_ids: list[int] = []
    for day in (0, 2, 4):
        week2_ids += run_until(harness, MONDAY_9AM + timedelta(days=7 + day, hours=9))
        reply = harness.text_in(PHONE, "I texted him")
        assert "<Message>" in reply.text
    week2_ids += run_until(harness, MONDAY_9AM + timedelta(days=14))
    week2 = nudge_kinds(harness, week2_ids)
    assert restraint_share(week2) >= 0.6, week2
    assert restraint_share(week2) > restraint_share(week1), (week1, week2)

    # THEM: the tip comes back in the reply itself, at once (well within 30 minutes).
    them_at = harness.now
    reply = harness.text_in(PHONE, "he called me")
    assert "<Message>" in reply.text
    with harness.runtime.sessions() as session:
        tip = session.scalar(select(Message).where(Message.kind == "tip"))
    assert tip is not None
    assert tip.sent_at is not None
    assert tip.sent_at - them_at < timedelta(minutes=30)

    # STOP: one confirmation, then 48 simulated hours of silence whatever is due.
    stop = harness.text_in(PHONE, "Stop. Thank you")
    assert "<Message>" in stop.text
    stopped_at = harness.now
    assert nudge_kinds(harness, run_until(harness, stopped_at + timedelta(hours=48))) == []
    assert "<Message>" not in harness.text_in(PHONE, "hello?").text

    # START: nudges come back by themselves.
    assert "<Message>" in harness.text_in(PHONE, "START").text
    resumed = nudge_kinds(harness, run_until(harness, harness.now + timedelta(days=2)))
    assert len(resumed) >= 1
