"""Pacing rules, worked examples: the sending window, its expiry and daylight saving."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from service.pacing.rules import PacingPolicy, plan_next
from service.pacing.window import in_sending_window, sending_window
from tests.pacing.builders import NEW_YORK, POLICY, local, sent, subscriber, utc, wall

# --- when -----------------------------------------------------------------------------


def test_nudge_never_before_8am_local_in_tokyo() -> None:
    now = local("2025-06-02T03:00:00", "Asia/Tokyo")
    plan = plan_next(subscriber(timezone="Asia/Tokyo"), now)
    assert plan.scheduled_for == local("2025-06-02T08:00:00", "Asia/Tokyo")


def test_nudge_after_8pm_goes_next_morning() -> None:
    plan = plan_next(subscriber(), local("2025-06-02T20:00:00", NEW_YORK))
    assert plan.scheduled_for == local("2025-06-03T08:00:00", NEW_YORK)


def test_subscriber_hours_narrow_but_never_widen_the_window() -> None:
    state = subscriber(hours=(10, 23))
    plan = plan_next(state, local("2025-06-02T06:00:00", NEW_YORK))
    assert plan.scheduled_for == local("2025-06-02T10:00:00", NEW_YORK)
    late = plan_next(state, local("2025-06-02T20:30:00", NEW_YORK))
    assert late.scheduled_for == local("2025-06-03T10:00:00", NEW_YORK)


def test_missed_window_expires_at_window_end() -> None:
    plan = plan_next(subscriber(), local("2025-06-02T19:15:00", NEW_YORK))
    assert plan.scheduled_for == local("2025-06-02T19:15:00", NEW_YORK)
    assert plan.expires_at == local("2025-06-02T20:00:00", NEW_YORK)


def test_nudge_expires_two_hours_after_its_time_inside_the_window() -> None:
    plan = plan_next(subscriber(), local("2025-06-02T11:00:00", NEW_YORK))
    assert plan.expires_at - plan.scheduled_for == timedelta(hours=2)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        plan_next(subscriber(), datetime(2025, 6, 2, 9))


def test_in_sending_window_guards_both_edges() -> None:
    def check(wall_time: str) -> bool:
        return in_sending_window(local(wall_time, NEW_YORK), NEW_YORK, (8, 20), POLICY)

    assert not check("2025-06-02T07:59:59")
    assert check("2025-06-02T08:00:00")
    assert check("2025-06-02T19:59:59")
    assert not check("2025-06-02T20:00:00")
    assert not in_sending_window(local("2025-06-02T08:59", NEW_YORK), NEW_YORK, (9, 20), POLICY)
    assert in_sending_window(local("2025-06-02T09:00", NEW_YORK), NEW_YORK, (9, 20), POLICY)


# --- daylight saving --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "evening_before", "next_opening_utc"),
    [
        # Spring forward 2025-03-09 02:00: 08:00 is EDT (UTC-4).
        (NEW_YORK, "2025-03-08T21:00:00", "2025-03-09T12:00:00"),
        # Fall back 2025-11-02 02:00: 08:00 is EST (UTC-5).
        (NEW_YORK, "2025-11-01T21:00:00", "2025-11-02T13:00:00"),
        # Clocks go forward 2025-03-30 01:00 GMT: 08:00 is BST (UTC+1).
        ("Europe/London", "2025-03-29T21:00:00", "2025-03-30T07:00:00"),
        # Clocks go back 2025-10-26 02:00 BST: 08:00 is GMT.
        ("Europe/London", "2025-10-25T21:00:00", "2025-10-26T08:00:00"),
    ],
)
def test_window_opens_at_8am_local_across_dst_changes(
    zone: str, evening_before: str, next_opening_utc: str
) -> None:
    state = subscriber(timezone=zone, welcomed=False)
    plan = plan_next(state, local(evening_before, zone))
    assert plan.scheduled_for == utc(next_opening_utc)
    assert wall(plan.scheduled_for, zone).time() == time(8)
    assert plan.expires_at - plan.scheduled_for == timedelta(hours=2)


def test_daily_nudge_keeps_its_wall_time_across_fall_back() -> None:
    last = local("2025-11-01T09:00:00", NEW_YORK)
    state = subscriber(recent_nudges=(sent("welcome", last),))
    plan = plan_next(state, last)
    # A day of window time later is 09:00 again, though 25 real hours passed.
    assert wall(plan.scheduled_for, NEW_YORK) == datetime(2025, 11, 2, 9)
    assert plan.scheduled_for - last == timedelta(hours=25)


def test_window_starting_in_a_spring_forward_gap_opens_after_the_gap() -> None:
    policy = PacingPolicy(window_start_hour=2)
    opening, closing = sending_window(date(2025, 3, 9), ZoneInfo(NEW_YORK), (0, 24), policy)
    assert wall(opening, NEW_YORK).time() >= time(3)
    assert wall(closing, NEW_YORK) == datetime(2025, 3, 9, 20)
    state = subscriber(welcomed=False, hours=(0, 24))
    plan = plan_next(state, local("2025-03-09T01:30:00", NEW_YORK), policy)
    assert plan.scheduled_for == opening
    assert in_sending_window(plan.scheduled_for, NEW_YORK, (0, 24), policy)


def test_window_edges_in_a_fall_back_fold_use_the_first_pass() -> None:
    policy = PacingPolicy(window_start_hour=1, window_end_hour=20)
    opening, _ = sending_window(date(2025, 11, 2), ZoneInfo(NEW_YORK), (1, 24), policy)
    assert opening == utc("2025-11-02T05:00:00")  # 01:00 EDT, the first 01:00
    end_policy = PacingPolicy(window_start_hour=0, window_end_hour=1)
    _, closing = sending_window(date(2025, 11, 2), ZoneInfo(NEW_YORK), (0, 24), end_policy)
    assert closing == utc("2025-11-02T05:00:00")
