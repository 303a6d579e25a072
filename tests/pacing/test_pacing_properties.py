"""Pacing rules: hypothesis properties over zones, times and histories."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from functools import cache
from itertools import pairwise
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.messages.catalog import (
    ACTIVITY_AREAS,
    BOTH_CHANNEL_TEMPLATES,
    NUDGE_KINDS,
    Kind,
    kind_of,
)
from service.pacing.explanations import RULES
from service.pacing.rules import ContactEntry, PastNudge, PlannedNudge, SubscriberState, plan_next
from service.pacing.window import in_sending_window, sending_window
from tests.pacing.builders import POLICY, sent, wall

# --- properties -----------------------------------------------------------------------

ZONES = (
    "America/New_York",
    "America/Los_Angeles",
    "America/Phoenix",
    "America/St_Johns",
    "America/Santiago",
    "America/Havana",
    "America/Sao_Paulo",
    "Europe/London",
    "Europe/Berlin",
    "Africa/Casablanca",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Tokyo",
    "Australia/Lord_Howe",
    "Australia/Adelaide",
    "Pacific/Chatham",
    "Pacific/Apia",
    "Pacific/Kiritimati",
)
RANGE_START = datetime(2025, 1, 1, tzinfo=UTC)
RANGE_END = datetime(2027, 12, 31, tzinfo=UTC)
ALL_NUDGE_TEMPLATES = tuple(t for t in BOTH_CHANNEL_TEMPLATES if kind_of(t) in NUDGE_KINDS)


@cache
def dst_changes() -> tuple[datetime, ...]:
    """Noon UTC of every day in 2025-2027 on which one of ZONES changes its offset."""
    changes = []
    day = RANGE_START.replace(hour=12)
    while day < RANGE_END:
        following = day + timedelta(days=1)
        for zone in map(ZoneInfo, ZONES):
            if day.astimezone(zone).utcoffset() != following.astimezone(zone).utcoffset():
                changes.append(following)
                break
        day = following
    return tuple(changes)


def instants() -> st.SearchStrategy[datetime]:
    """Any instant of 2025-2027, half of them within two days of a DST change."""
    anywhere = st.integers(0, int((RANGE_END - RANGE_START).total_seconds())).map(
        lambda s: RANGE_START + timedelta(seconds=s)
    )
    near_change = st.builds(
        lambda change, seconds: change + timedelta(seconds=seconds),
        st.sampled_from(dst_changes()),
        st.integers(-2 * 86_400, 2 * 86_400),
    )
    return st.one_of(anywhere, near_change)


def ago(now: datetime, most: timedelta) -> st.SearchStrategy[datetime]:
    return st.integers(0, int(most.total_seconds())).map(lambda s: now - timedelta(seconds=s))


@st.composite
def states_and_nows(draw: st.DrawFn) -> tuple[SubscriberState, datetime]:
    now = draw(instants())
    lookback = POLICY.lookback
    nudges = draw(
        st.lists(
            st.builds(
                sent,
                st.sampled_from(ALL_NUDGE_TEMPLATES),
                # Mostly past, a few still scheduled in the next day.
                st.one_of(ago(now, lookback), ago(now + timedelta(days=1), timedelta(days=1))),
                st.sampled_from(["sms", "email"]),
            ),
            max_size=12,
        )
    )
    contacts = draw(
        st.lists(st.builds(ContactEntry, st.sampled_from(["me", "them"]), ago(now, lookback)))
    )
    start = draw(st.integers(0, 23))
    maybe_recent = st.none() | ago(now, timedelta(days=40))
    state = SubscriberState(
        subscriber_id=draw(st.integers(1, 10_000)),
        timezone=draw(st.sampled_from(ZONES)),
        channel=draw(st.sampled_from(["sms", "email"])),
        cadence_per_week=draw(st.integers(3, 21)),
        hours=(start, draw(st.integers(start + 1, 24))),
        activity_areas=tuple(draw(st.lists(st.sampled_from(ACTIVITY_AREAS), unique=True))),
        separation_date=draw(
            st.none() | st.integers(-3, 30).map(lambda d: now.date() - timedelta(days=d))
        ),
        paused_until=draw(st.none() | ago(now + timedelta(days=5), timedelta(days=6))),
        active_since=draw(maybe_recent),
        welcomed=draw(st.sampled_from([True, True, True, False])),
        last_engaged_at=draw(maybe_recent),
        last_done_at=draw(maybe_recent),
        recent_nudges=tuple(nudges),
        contacts=tuple(contacts),
    )
    return state, now


def expected_hours(state: SubscriberState) -> tuple[int, int]:
    """The window the invariants demand, worked out independently of pacing."""
    start, end = max(8, state.hours[0]), min(20, state.hours[1])
    return (start, end) if start < end else (8, 20)


def sms_in_any_24h_containing(at: datetime, sms_times: Sequence[datetime]) -> int:
    """The most SMS any rolling 24 hours that includes ``at`` holds."""
    times = sorted(sms_times)
    most = 0
    for opening in times:
        if opening <= at < opening + timedelta(hours=24):
            most = max(most, sum(1 for t in times if opening <= t < opening + timedelta(hours=24)))
    return most


def assert_plan_invariants(state: SubscriberState, now: datetime, plan: PlannedNudge) -> None:
    zone, at = state.timezone, plan.scheduled_for
    start, end = expected_hours(state)
    assert at >= now
    assert at.utcoffset() == timedelta(0)
    assert plan.expires_at.utcoffset() == timedelta(0)
    local_time = wall(at, state.timezone)
    since_midnight = local_time - datetime.combine(local_time.date(), time())
    assert timedelta(hours=start) <= since_midnight < timedelta(hours=end)
    assert in_sending_window(at, zone, state.hours, POLICY)
    _, closing = sending_window(local_time.date(), ZoneInfo(zone), state.hours, POLICY)
    assert at < plan.expires_at <= min(at + POLICY.expiry_grace, closing)
    expiry_wall = wall(plan.expires_at, zone)
    if end < 24:
        assert expiry_wall.date() == local_time.date()
        assert expiry_wall.time() <= time(end)
    for nudge in state.recent_nudges:
        assert abs(at - nudge.at) >= POLICY.min_spacing
    if state.channel == "sms":
        sms = [n.at for n in state.recent_nudges if n.channel == "sms"]
        assert sms_in_any_24h_containing(at, [*sms, at]) <= POLICY.max_sms_per_24h
    if state.paused_until is not None:
        assert at >= state.paused_until
    assert plan.rule in RULES
    assert plan.kind in NUDGE_KINDS
    assert plan.template in BOTH_CHANNEL_TEMPLATES
    assert kind_of(plan.template) == plan.kind


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(states_and_nows())
def test_every_plan_keeps_the_pacing_invariants(case: tuple[SubscriberState, datetime]) -> None:
    state, now = case
    assert_plan_invariants(state, now, plan_next(state, now))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(states_and_nows(), st.integers(5, 25), st.lists(st.sampled_from(["sms", "email"])))
def test_plans_fed_back_in_a_row_keep_the_invariants(
    case: tuple[SubscriberState, datetime], count: int, channels: list[str]
) -> None:
    state, now = case
    # A clean start: the invariants of the whole sequence cannot hold for a random past.
    state = replace(state, recent_nudges=())
    history: list[PastNudge] = []
    for step in range(count):
        if channels:
            state = replace(state, channel=channels[step % len(channels)])  # type: ignore[arg-type]
        plan = plan_next(state, now)
        assert_plan_invariants(state, now, plan)
        history.append(PastNudge(plan.kind, plan.template, state.channel, plan.scheduled_for))
        now = plan.scheduled_for
        state = replace(
            state,
            welcomed=True,
            recent_nudges=tuple(n for n in history if n.at > now - POLICY.lookback),
        )
    sms = [n.at for n in history if n.channel == "sms"]
    assert all(sms_in_any_24h_containing(t, sms) <= POLICY.max_sms_per_24h for t in sms)
    times = [n.at for n in history]
    assert all(b - a >= POLICY.min_spacing for a, b in pairwise(times))
    activities = [n for n in history if n.kind == Kind.ACTIVITY]
    for i, first in enumerate(activities):
        for second in activities[i + 1 :]:
            if first.template == second.template:
                assert second.at - first.at >= POLICY.lookback


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(ZONES),
    instants(),
    st.integers(0, 23).flatmap(lambda s: st.tuples(st.just(s), st.integers(s + 1, 24))),
)
def test_sending_window_bounds_are_inside_the_local_hours(
    zone: str, at: datetime, hours: tuple[int, int]
) -> None:
    tz = ZoneInfo(zone)
    day = wall(at, zone).date()
    opening, closing = sending_window(day, tz, hours, POLICY)
    start = max(8, hours[0]) if max(8, hours[0]) < min(20, hours[1]) else 8
    assert opening < closing
    assert wall(opening, zone).date() == day
    assert wall(opening, zone).time() >= time(start)
    assert in_sending_window(opening, zone, hours, POLICY)
    assert not in_sending_window(closing, zone, hours, POLICY)
    assert in_sending_window(at, zone, hours, POLICY) == (opening <= at < closing)
