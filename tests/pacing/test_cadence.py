"""Pacing rules, worked examples: cadence, the SMS cap, spacing across channels and pauses."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from service.pacing.rules import PacingPolicy, plan_next
from tests.pacing.builders import NEW_YORK, local, sent, simulate, subscriber, wall


def test_cadence_gap_counts_only_time_inside_the_window() -> None:
    last = local("2025-06-02T09:00:00", NEW_YORK)
    state = subscriber(cadence_per_week=21, recent_nudges=(sent("welcome", last),))
    # A week of 12-hour windows / 21 = 4 hours of window time.
    assert plan_next(state, last).scheduled_for == last + timedelta(hours=4)
    daily = replace(state, cadence_per_week=7)
    assert plan_next(daily, last).scheduled_for == local("2025-06-03T09:00:00", NEW_YORK)
    evening = local("2025-06-02T18:00:00", NEW_YORK)
    late = replace(state, recent_nudges=(sent("welcome", evening),))
    # Two hours left today, two more tomorrow from 08:00.
    assert plan_next(late, evening).scheduled_for == local("2025-06-03T10:00:00", NEW_YORK)


def test_three_a_day_cadence_sends_three_a_day() -> None:
    start = local("2025-06-02T08:00:00", NEW_YORK)
    plans = simulate(subscriber(cadence_per_week=21), start, 21)
    days = [wall(p.scheduled_for, NEW_YORK).date() for _, p in plans]
    assert [days.count(day) for day in sorted(set(days))] == [3] * 7


def test_three_a_week_cadence_spreads_over_the_week() -> None:
    start = local("2025-06-02T08:00:00", NEW_YORK)
    plans = simulate(subscriber(cadence_per_week=3), start, 7)
    assert plans[-1][1].scheduled_for - plans[0][1].scheduled_for < timedelta(days=15)
    assert plans[-1][1].scheduled_for - plans[0][1].scheduled_for > timedelta(days=13)


def test_fourth_sms_in_24h_moves_to_next_day() -> None:
    day = "2025-06-02T"
    history = tuple(
        sent(template, local(day + hour, NEW_YORK))
        for template, hour in (
            ("restraint_01", "09:00"),
            ("activity_fitness_1", "12:00"),
            ("patience_01", "15:00"),
        )
    )
    state = subscriber(cadence_per_week=21, recent_nudges=history)
    now = local(day + "15:00", NEW_YORK)
    # Cadence alone allows 19:00 today; the cap waits for the 09:00 SMS to age out.
    assert plan_next(state, now).scheduled_for == local("2025-06-03T09:00:00", NEW_YORK)
    by_email = replace(state, channel="email")
    assert plan_next(by_email, now).scheduled_for == local("2025-06-02T19:00:00", NEW_YORK)


def test_scheduled_nudge_on_the_other_channel_keeps_its_spacing() -> None:
    now = local("2025-06-02T09:00:00", NEW_YORK)
    upcoming = sent("restraint_02", now + timedelta(hours=1), channel="email")
    policy = PacingPolicy(max_cadence_per_week=56)  # 3-hour cadence: spacing decides
    state = subscriber(cadence_per_week=56, recent_nudges=(upcoming,))
    plan = plan_next(state, now, policy)
    assert plan.scheduled_for == upcoming.at + timedelta(hours=3)


def test_pause_delays_until_pause_ends() -> None:
    now = local("2025-06-02T09:00:00", NEW_YORK)
    until = local("2025-06-05T15:30:00", NEW_YORK)
    assert plan_next(subscriber(paused_until=until), now).scheduled_for == until
    night = local("2025-06-05T22:00:00", NEW_YORK)
    later = plan_next(subscriber(paused_until=night), now)
    assert later.scheduled_for == local("2025-06-06T08:00:00", NEW_YORK)
