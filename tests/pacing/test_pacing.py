"""Pacing rules: worked examples, then hypothesis properties over zones, times and histories."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.messages.catalog import (
    ACTIVITY_AREAS,
    ACTIVITY_TEMPLATES,
    BOTH_CHANNEL_TEMPLATES,
    NUDGE_KINDS,
    PATIENCE_TEMPLATES,
    RESTRAINT_TEMPLATES,
    TIP_TEMPLATES,
    Kind,
    kind_of,
)
from service.pacing.explanations import RULES
from service.pacing.rules import (
    ContactEntry,
    PacingPolicy,
    PastNudge,
    PlannedNudge,
    SubscriberState,
    effective_cadence,
    plan_next,
)
from service.pacing.variants import choose_restraint, choose_tip
from service.pacing.window import in_sending_window, sending_window

POLICY = PacingPolicy()
NEW_YORK = "America/New_York"


def utc(text: str) -> datetime:
    """An ISO-8601 instant without offset, read as UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local(text: str, zone: str) -> datetime:
    """An ISO-8601 local wall time in ``zone``, as a UTC instant."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


def wall(at: datetime, zone: str) -> datetime:
    return at.astimezone(ZoneInfo(zone)).replace(tzinfo=None)


def subscriber(**changes: object) -> SubscriberState:
    """A welcomed New York subscriber on SMS at the default cadence.

    Without ``active_since`` or ``last_engaged_at`` there is no engagement clock, so
    the subscriber never counts as quiet unless a test sets one.
    """
    base = SubscriberState(
        subscriber_id=1, timezone=NEW_YORK, channel="sms", cadence_per_week=7, welcomed=True
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def sent(template: str, at: datetime, channel: str = "sms") -> PastNudge:
    return PastNudge(kind=kind_of(template), template=template, channel=channel, at=at)  # type: ignore[arg-type]


def simulate(
    state: SubscriberState,
    start: datetime,
    count: int,
    policy: PacingPolicy = POLICY,
    engaged: bool = False,
) -> list[tuple[datetime, PlannedNudge]]:
    """Plan ``count`` nudges in a row, each going out and fed back into the history.

    Returns ``(now, plan)`` pairs. The planner supplies only the last ``lookback``.
    ``engaged`` marks the subscriber as engaging at every nudge.
    """
    now, plans = start, []
    for _ in range(count):
        plan = plan_next(state, now, policy)
        plans.append((now, plan))
        now = plan.scheduled_for
        nudge = PastNudge(plan.kind, plan.template, state.channel, plan.scheduled_for)
        state = replace(
            state,
            welcomed=True,
            recent_nudges=(
                *(n for n in state.recent_nudges if n.at > now - policy.lookback),
                nudge,
            ),
            contacts=tuple(c for c in state.contacts if c.at > now - policy.lookback),
            last_engaged_at=now if engaged else state.last_engaged_at,
        )
    return plans


# --- who gets what ----------------------------------------------------------------


def test_first_nudge_is_the_welcome() -> None:
    plan = plan_next(subscriber(welcomed=False), utc("2025-06-02T15:00:00"))
    assert (plan.kind, plan.template, plan.rule) == (Kind.WELCOME, "welcome", "welcome")


def test_scheduled_welcome_is_not_planned_twice() -> None:
    now = utc("2025-06-02T15:00:00")
    state = subscriber(welcomed=False, recent_nudges=(sent("welcome", now),))
    assert plan_next(state, now).kind == Kind.ACTIVITY


def test_me_log_makes_next_nudge_restraint() -> None:
    now = utc("2025-06-02T15:00:00")
    # The last nudge was a restraint reminder, so the mix alone would pick an activity.
    state = subscriber(
        recent_nudges=(sent("restraint_01", now - timedelta(days=1)),),
        contacts=(ContactEntry("me", now - timedelta(hours=1)),),
    )
    plan = plan_next(state, now)
    assert plan.kind == Kind.RESTRAINT
    assert plan.rule == "restraint_after_me"
    assert plan.template in RESTRAINT_TEMPLATES
    assert plan.template != "restraint_01"
    assert plan_next(replace(state, contacts=()), now).kind == Kind.ACTIVITY


def test_restraint_after_me_holds_activities_for_72_hours() -> None:
    start = utc("2025-06-02T15:00:00")
    state = subscriber(cadence_per_week=21, contacts=(ContactEntry("me", start),))
    plans = simulate(state, start, 12)
    held = [p for _, p in plans if p.scheduled_for - start < timedelta(hours=72)]
    after = [p for _, p in plans if p.scheduled_for - start >= timedelta(hours=72)]
    assert held
    assert after
    assert all(p.rule == "restraint_after_me" for p in held)
    assert not any(p.rule == "restraint_after_me" for p in after)


def test_them_log_ends_the_restraint_hold() -> None:
    now = utc("2025-06-02T15:00:00")
    state = subscriber(
        recent_nudges=(sent("restraint_01", now - timedelta(days=1)),),
        contacts=(
            ContactEntry("me", now - timedelta(hours=3)),
            ContactEntry("them", now - timedelta(hours=2)),
        ),
    )
    assert plan_next(state, now).rule == "activity_rotation"


def test_one_sided_contact_makes_mix_restraint_heavy() -> None:
    start = utc("2025-06-02T15:00:00")
    # Four of my contacts to their one, the latest four days ago (past the ME hold).
    contacts = (
        *(ContactEntry("me", start - timedelta(days=d)) for d in (4, 5, 6, 7)),
        ContactEntry("them", start - timedelta(days=8)),
    )
    plans = simulate(subscriber(contacts=contacts), start, 7)
    assert sum(p.kind == Kind.RESTRAINT for _, p in plans) * 3 >= 2 * len(plans)
    assert {p.rule for _, p in plans} >= {"one_sided_restraint", "activity_rotation"}


def test_balanced_contact_keeps_the_normal_mix() -> None:
    start = utc("2025-06-02T15:00:00")
    contacts = tuple(ContactEntry("me", start - timedelta(days=d)) for d in (4, 5, 6)) + tuple(
        ContactEntry("them", start - timedelta(days=d)) for d in (3.5, 4.5)
    )
    kinds = [p.kind for _, p in simulate(subscriber(contacts=contacts), start, 8)]
    assert kinds == [Kind.ACTIVITY, Kind.RESTRAINT, Kind.ACTIVITY, Kind.PATIENCE] * 2


def test_patience_in_first_two_weeks_after_separation() -> None:
    start = local("2025-06-02T09:00:00", NEW_YORK)
    state = subscriber(separation_date=date(2025, 5, 31))
    early = [p for _, p in simulate(state, start, 8)]
    assert [p.kind for p in early[::2]] == [Kind.PATIENCE] * 4
    assert all(p.rule == "early_patience" for p in early[::2])
    assert all(p.template in PATIENCE_TEMPLATES for p in early[::2])
    later = [p for _, p in simulate(state, start + timedelta(days=13), 8)]
    assert not any(p.rule == "early_patience" for p in later)


def test_activity_templates_do_not_repeat_within_14_days() -> None:
    start = local("2025-06-02T08:00:00", NEW_YORK)
    plans = [p for _, p in simulate(subscriber(cadence_per_week=21), start, 60)]
    assert plans[-1].scheduled_for - start >= timedelta(days=14)
    activities = [p for p in plans if p.kind == Kind.ACTIVITY]
    assert len(activities) >= 10
    for i, first in enumerate(activities):
        for second in activities[i + 1 :]:
            if first.template == second.template:
                assert second.scheduled_for - first.scheduled_for >= timedelta(days=14)


def test_activities_take_the_chosen_areas_in_turn() -> None:
    start = local("2025-06-02T08:00:00", NEW_YORK)
    state = subscriber(activity_areas=("fitness", "friends", "learning"))
    plans = [p for _, p in simulate(state, start, 12)]
    areas = [p.template.split("_")[1] for p in plans if p.kind == Kind.ACTIVITY]
    assert areas == ["fitness", "friends", "learning", "fitness", "friends", "learning"]


def test_few_areas_fall_back_to_reminders_once_every_idea_was_used() -> None:
    start = local("2025-06-02T08:00:00", NEW_YORK)
    state = subscriber(cadence_per_week=21, activity_areas=("fitness",))
    plans = [p for _, p in simulate(state, start, 40)]
    fortnight = [p for p in plans if p.scheduled_for - start < timedelta(days=14)]
    activities = [p.template for p in fortnight if p.kind == Kind.ACTIVITY]
    assert sorted(activities) == list(ACTIVITY_TEMPLATES["fitness"])
    assert "activity_rested" in {p.rule for p in plans}


def test_done_gets_a_rest_before_the_next_suggestion() -> None:
    now = utc("2025-06-02T15:00:00")
    state = subscriber(
        recent_nudges=(sent("restraint_03", now - timedelta(days=1)),),
        last_done_at=now - timedelta(hours=2),
    )
    plan = plan_next(state, now)
    assert plan.rule == "rest_after_done"
    assert plan.kind == Kind.PATIENCE
    rested = replace(state, last_done_at=now - timedelta(hours=25))
    assert plan_next(rested, now).kind == Kind.ACTIVITY


def test_quiet_14_days_sends_one_checkin_and_halves_cadence() -> None:
    start = utc("2025-06-02T15:00:00")
    history = tuple(sent("restraint_01", start - timedelta(days=d)) for d in (5, 3, 1))
    state = subscriber(
        active_since=start - timedelta(days=40), last_engaged_at=start - timedelta(days=15)
    )
    state = replace(state, recent_nudges=history)
    assert effective_cadence(state, start, POLICY) == 3.5
    assert effective_cadence(replace(state, last_engaged_at=start), start, POLICY) == 7
    plans = simulate(state, start, 12)
    assert plans[0][1].rule == "quiet_checkin"
    assert plans[0][1].template == "checkin"
    assert [p.kind for _, p in plans].count(Kind.CHECKIN) == 1
    for (_, earlier), (_, later) in pairwise(plans):
        assert later.scheduled_for - earlier.scheduled_for >= timedelta(days=2)


def test_new_subscriber_is_not_quiet_before_14_days() -> None:
    now = utc("2025-06-02T15:00:00")
    state = subscriber(active_since=now - timedelta(days=13))
    assert effective_cadence(state, now, POLICY) == 7
    assert plan_next(state, now).rule != "quiet_checkin"


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


# --- variants and rules -----------------------------------------------------------------


def test_tips_cycle_through_every_variant_before_repeating() -> None:
    used: list[str] = []
    for _ in range(len(TIP_TEMPLATES)):
        used.append(choose_tip(used, subscriber_id=7))
    assert sorted(used) == sorted(TIP_TEMPLATES)
    assert choose_tip(used, subscriber_id=7) == used[0]


def test_restraint_reply_picks_the_least_recently_used() -> None:
    all_but_last = [t for t in RESTRAINT_TEMPLATES if t != "restraint_05"]
    assert choose_restraint(all_but_last, subscriber_id=3) == "restraint_05"
    assert choose_restraint([*RESTRAINT_TEMPLATES[1:], "restraint_01"], 3) == "restraint_02"


def test_different_subscribers_start_at_different_variants() -> None:
    firsts = {choose_restraint([], subscriber_id=n) for n in range(12)}
    assert firsts == set(RESTRAINT_TEMPLATES)


def test_every_rule_has_one_plain_sentence() -> None:
    for rule, sentence in RULES.items():
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", rule)
        assert sentence.endswith(".")
        assert sentence.count(". ") == 0 or rule == "them_reply_tip"


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
