"""Quiet hours wherever they live: a nudge keeps the window of every candidate zone.

A test matrix: every US zone, Canada's, the UK's, Ireland's and Australia's, and the
candidate sets real numbers get (split area codes, mobiles), planned on every day
around every daylight-saving change of 2027 in either hemisphere. Every planned
send's local time must be inside [08:00, 20:00) (or the person's narrower hours) in
every candidate zone; where pacing says the zones share no hours, a brute-force scan
of the days ahead must agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from service.pacing.rules import (
    PacingPolicy,
    PastNudge,
    PlannedNudge,
    SubscriberState,
    plan_next,
)
from service.pacing.window import (
    MAX_DAYS_SEARCHED,
    NoSharedWindow,
    in_sending_window,
    join_zones,
    shares_sending_hours,
    split_zones,
)
from tests.support.zones import (
    CANDIDATE_SETS,
    TEST_DAYS,
    TRANSITION_DATES,
    ZONE_SETS,
    inside_hours,
    local,
    transitions,
    utc,
    wall,
)

POLICY = PacingPolicy()
QUARTER_HOUR = timedelta(minutes=15)  # every offset in the matrix is whole quarter hours


def test_the_matrix_covers_both_hemispheres_daylight_saving_changes() -> None:
    # US and Canada: 14 March and 7 November; EU: 28 March and 31 October;
    # Australia (and Lord Howe, by half an hour): 4 April and 3 October.
    assert {date(2027, 3, 14), date(2027, 11, 7)} <= set(transitions("America/New_York"))
    assert set(transitions("Europe/London")) == {date(2027, 3, 28), date(2027, 10, 31)}
    assert set(transitions("Australia/Sydney")) == {date(2027, 4, 4), date(2027, 10, 3)}
    assert transitions("America/Phoenix") == ()
    assert transitions("America/Regina") == ()
    assert transitions("Australia/Brisbane") == ()
    assert len(TRANSITION_DATES) >= 6


def legal_hours(own: tuple[int, int]) -> tuple[int, int]:
    """The legal window narrowed by the person's hours, worked out independently."""
    start, end = max(8, own[0]), min(20, own[1])
    return (start, end) if start < end else (8, 20)


def first_shared_instant(
    after: datetime, zones: Sequence[str], hours: tuple[int, int]
) -> datetime | None:
    """Brute force: the first instant from ``after`` inside the hours in every zone.

    Window edges fall on whole quarter hours in every zone here, so checking ``after``
    and then each quarter hour finds the first one.
    """
    if all(inside_hours(after, zone, hours) for zone in zones):
        return after
    at = datetime.fromtimestamp(
        -(-after.timestamp() // QUARTER_HOUR.total_seconds()) * QUARTER_HOUR.total_seconds(), UTC
    )
    while at < after + timedelta(days=MAX_DAYS_SEARCHED):
        if all(inside_hours(at, zone, hours) for zone in zones):
            return at
        at += QUARTER_HOUR
    return None


def shared_every_day(zones: Sequence[str], hours: tuple[int, int], first: date, last: date) -> bool:
    day = first
    while day <= last:
        start = datetime.combine(day, time(), UTC)
        found = first_shared_instant(start, zones, hours)
        if found is None or found >= start + timedelta(days=1):
            return False
        day += timedelta(days=1)
    return True


def person(zones: tuple[str, ...], **changes: object) -> SubscriberState:
    base = SubscriberState(
        subscriber_id=7,
        timezone=zones[0],
        channel="sms",
        cadence_per_week=7,
        welcomed=True,
        candidate_zones=zones if len(zones) > 1 else (),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def assert_sent_inside_every_zone(
    plan: PlannedNudge, zones: Sequence[str], hours: tuple[int, int], now: datetime
) -> None:
    start, end = legal_hours(hours)
    assert plan.scheduled_for >= now
    for zone in zones:
        assert inside_hours(plan.scheduled_for, zone, (start, end)), (zone, plan.scheduled_for)
        assert in_sending_window(plan.scheduled_for, zone, hours, POLICY)
        # It expires before its window closes anywhere: never sent late in any zone.
        expiry = wall(plan.expires_at, zone)
        assert expiry.date() == wall(plan.scheduled_for, zone).date()
        assert expiry.time() <= time(end)
    assert in_sending_window(
        plan.scheduled_for, zones[0], hours, POLICY, candidates=zones if len(zones) > 1 else ()
    )
    assert plan.scheduled_for < plan.expires_at <= plan.scheduled_for + POLICY.expiry_grace


# --- worked examples ----------------------------------------------------------------------


def test_eastern_and_central_share_nine_to_eight_eastern() -> None:
    zones = CANDIDATE_SETS["split US area code (Eastern + Central)"]
    plan = plan_next(person(zones, welcomed=False), local("2027-06-01T07:00", "America/New_York"))
    assert wall(plan.scheduled_for, "America/New_York") == datetime(2027, 6, 1, 9, 0)
    assert wall(plan.scheduled_for, "America/Chicago") == datetime(2027, 6, 1, 8, 0)
    late = plan_next(person(zones, welcomed=False), local("2027-06-01T19:30", "America/New_York"))
    assert wall(late.scheduled_for, "America/New_York") == datetime(2027, 6, 1, 19, 30)
    assert wall(late.expires_at, "America/New_York") == datetime(2027, 6, 1, 20, 0)


def test_a_named_zone_alone_keeps_the_full_window() -> None:
    plan = plan_next(
        person(("America/New_York",), welcomed=False), local("2027-06-01T07:00", "America/New_York")
    )
    assert wall(plan.scheduled_for, "America/New_York") == datetime(2027, 6, 1, 8, 0)


def test_shared_window_is_worked_out_for_each_day() -> None:
    # Sydney keeps summer time from October to April; Brisbane never does.
    zones = CANDIDATE_SETS["Sydney + Brisbane"]
    summer = plan_next(person(zones, welcomed=False), local("2027-01-15T06:00", "Australia/Sydney"))
    winter = plan_next(person(zones, welcomed=False), local("2027-06-15T06:00", "Australia/Sydney"))
    assert wall(summer.scheduled_for, "Australia/Sydney").time() == time(9, 0)
    assert wall(winter.scheduled_for, "Australia/Sydney").time() == time(8, 0)


def test_person_hours_narrow_the_shared_window_in_every_zone() -> None:
    zones = CANDIDATE_SETS["split US area code (Eastern + Central)"]
    state = person(zones, welcomed=False, hours=(8, 12))
    plan = plan_next(state, local("2027-06-01T12:30", "America/New_York"))
    # 12:00 Eastern closes the Eastern hours; 09:00-12:00 Eastern is 08:00-11:00 Central.
    assert wall(plan.scheduled_for, "America/New_York") == datetime(2027, 6, 2, 9, 0)


def test_zones_sharing_no_hours_plan_nothing() -> None:
    zones = ("Pacific/Honolulu", "Asia/Kolkata", "Europe/London")
    with pytest.raises(NoSharedWindow):
        plan_next(person(zones, welcomed=False), utc("2027-02-01T00:00"))
    assert not shares_sending_hours(utc("2027-02-01T00:00"), zones, (8, 20), POLICY)
    assert first_shared_instant(utc("2027-02-01T00:00"), zones, (8, 20)) is None


def test_seasonal_shared_hours_come_and_go_with_daylight_saving() -> None:
    zones = CANDIDATE_SETS["New York + Shanghai (seasonal)"]
    # January: 19:00-20:00 in New York is 08:00-09:00 in Shanghai.
    plan = plan_next(person(zones, welcomed=False), utc("2027-01-12T00:00"))
    assert wall(plan.scheduled_for, "America/New_York").time() == time(19, 0)
    assert wall(plan.scheduled_for, "Asia/Shanghai").time() == time(8, 0)
    # July: New York's summer time closes the last hour.
    with pytest.raises(NoSharedWindow):
        plan_next(person(zones, welcomed=False), utc("2027-07-12T00:00"))


def test_one_a_day_keeps_the_same_time_each_day_in_a_shared_window() -> None:
    """Cadence counts shared window time, so 7 a week is one a day, not one every 12 h
    of a shorter window (which would drift and skip days)."""
    for zones in (
        CANDIDATE_SETS["split US area code (Eastern + Central)"],
        CANDIDATE_SETS["Australian mobile"],
    ):
        state, now, times = person(zones), utc("2027-05-03T00:00"), []
        for _ in range(6):
            plan = plan_next(state, now)
            times.append(plan.scheduled_for)
            state = replace(
                state,
                recent_nudges=(
                    *state.recent_nudges,
                    PastNudge(plan.kind, plan.template, "sms", plan.scheduled_for),
                ),
            )
            now = plan.scheduled_for
        local_days = [wall(at, zones[0]).date() for at in times]
        assert [b - a for a, b in pairwise(local_days)] == [timedelta(days=1)] * 5
        assert len({wall(at, zones[0]).time() for at in times[1:]}) == 1


def test_stored_candidates_round_trip() -> None:
    zones = CANDIDATE_SETS["Australian mobile"]
    assert split_zones(join_zones(zones)) == zones
    assert join_zones(()) is None
    assert split_zones(None) == ()


# --- the matrix ------------------------------------------------------------------------------

HOURS = st.integers(0, 23).flatmap(lambda s: st.tuples(st.just(s), st.integers(s + 1, 24)))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(sorted(ZONE_SETS)),
    st.sampled_from(TEST_DAYS),
    st.integers(0, 24 * 60 - 1),
    HOURS,
    st.integers(3, 21),
)
def test_every_plan_is_inside_the_hours_of_every_candidate_zone(
    label: str, day: date, minute: int, hours: tuple[int, int], cadence: int
) -> None:
    zones = ZONE_SETS[label]
    now = datetime.combine(day, time(), UTC) + timedelta(minutes=minute)
    state = person(zones, welcomed=False, hours=hours, cadence_per_week=cadence)
    expected = first_shared_instant(now, zones, legal_hours(hours))
    try:
        plan = plan_next(state, now)
    except NoSharedWindow:
        assert expected is None, f"{label}: pacing found no shared hours, but {expected} is one"
        return
    assert_sent_inside_every_zone(plan, zones, hours, now)
    assert plan.scheduled_for == expected


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(sorted(ZONE_SETS)),
    st.sampled_from(TRANSITION_DATES),
    st.integers(0, 24 * 60 - 1),
    st.sampled_from([(8, 20), (9, 17), (12, 20), (8, 11)]),
    st.integers(3, 21),
)
def test_plans_in_a_row_through_a_daylight_saving_change_stay_inside_every_zone(
    label: str, change: date, minute: int, hours: tuple[int, int], cadence: int
) -> None:
    """From the day before a change to the day after it, each plan fed back in."""
    zones = ZONE_SETS[label]
    now = datetime.combine(change - timedelta(days=1), time(), UTC) + timedelta(minutes=minute)
    stop = datetime.combine(change + timedelta(days=2), time(), UTC)
    # Sets without shared hours on some day of the run are the examples' business.
    assume(shared_every_day(zones, legal_hours(hours), now.date(), stop.date() + timedelta(days=7)))
    state = person(zones, hours=hours, cadence_per_week=cadence)
    while now < stop:
        plan = plan_next(state, now)
        assert_sent_inside_every_zone(plan, zones, hours, now)
        state = replace(
            state,
            recent_nudges=(
                *state.recent_nudges,
                PastNudge(plan.kind, plan.template, "sms", plan.scheduled_for),
            ),
        )
        now = plan.scheduled_for


@pytest.mark.parametrize("label", sorted(ZONE_SETS))
@pytest.mark.parametrize("day", TEST_DAYS, ids=str)
def test_each_zone_set_on_each_day_around_each_change_plans_inside_every_zone(
    label: str, day: date
) -> None:
    """Exhaustive over the matrix (no sampling): a plan from every hour of the day."""
    zones = ZONE_SETS[label]
    for hour in range(24):
        now = datetime.combine(day, time(hour), UTC)
        expected = first_shared_instant(now, zones, (8, 20))
        try:
            plan = plan_next(person(zones, welcomed=False), now)
        except NoSharedWindow:
            assert expected is None
            continue
        assert_sent_inside_every_zone(plan, zones, (8, 20), now)
        assert plan.scheduled_for == expected
