"""End to end: signup → YES → a simulated week of nudges, all within the rules."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from service.storage.models import Message
from tests.support.world import Harness, make_settings

PHONE = "+13125550177"  # Chicago
CHICAGO = ZoneInfo("America/Chicago")
START = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # 08:00 in Chicago, Monday
STEP = timedelta(minutes=20)


def test_a_week_of_nudges_keeps_window_spacing_cap_and_cadence(database_url: str) -> None:
    harness = Harness(make_settings(database_url), now=START)
    assert (
        harness.client.post("/subscribe", json={"phone": PHONE, "consent": True}).status_code == 202
    )
    harness.tick()
    assert harness.text_in(PHONE, "YES").status_code == 200

    sent_at: dict[int, datetime] = {}
    end = START + timedelta(days=7)
    while harness.now < end:
        report = harness.tick(harness.now + STEP)
        for outcome in report.dispatch.outcomes:
            if outcome.status == "sent":
                sent_at[outcome.message_id] = harness.now

    with harness.runtime.sessions() as session:
        nudges = session.execute(
            select(Message.id, Message.kind, Message.rule, Message.status)
            .where(Message.priority == 1, Message.status == "sent")
            .order_by(Message.id)
        ).all()
        confirmations = session.scalars(select(Message.id).where(Message.kind == "confirm")).all()

    assert len(confirmations) == 1
    times = sorted(sent_at[row.id] for row in nudges)
    # Cadence: one a day by default. Seven days give six or seven nudges.
    assert 6 <= len(nudges) <= 8, [(r.kind, r.rule) for r in nudges]
    assert nudges[0].kind == "welcome"
    assert all(row.rule for row in nudges)
    for at in times:
        local = at.astimezone(CHICAGO)
        assert 8 <= local.hour < 20, f"nudge at {local:%H:%M} local, outside 08:00-20:00"
    for earlier, later in itertools.pairwise(times):
        assert later - earlier >= timedelta(hours=3)
    for at in times:
        assert sum(1 for t in times if at - timedelta(hours=24) < t <= at) <= 3
    kinds = {row.kind for row in nudges}
    assert {"activity", "restraint"} <= kinds, kinds
