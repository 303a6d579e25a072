"""Decision points and the randomised choice at each (service.pacing.experiment): pure."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from service.learning.risky_hours import BINS
from service.messages.catalog import Kind
from service.pacing.decision_times import (
    DECISIONS_PER_DAY,
    decision_points,
    is_last_point_of_day,
    next_decision_point,
    predicted_time,
    risky_send_time,
    survey_time,
)
from service.pacing.experiment import (
    NUDGE_PROBABILITY_BOUNDS,
    POLICY_EXPERIMENT,
    POLICY_V1_GRID,
    Option,
    Reason,
    Situation,
    decide,
)
from service.pacing.rules import DEFAULT_POLICY, ContactEntry, PastNudge, SubscriberState

NY = "America/New_York"
ZONE = ZoneInfo(NY)


def local(day: int, hour: float, month: int = 4) -> datetime:
    """A New York wall time in April 2026 (Monday the 6th is a weekday), as UTC."""
    wall = datetime(2026, month, day, tzinfo=ZONE) + timedelta(hours=hour)
    return wall.astimezone(UTC)


def state(**changes: object) -> SubscriberState:
    base = SubscriberState(
        subscriber_id=7,
        timezone=NY,
        channel="sms",
        cadence_per_week=21,
        welcomed=True,
        active_since=local(1, 9),
        last_engaged_at=local(6, 9),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def situation(at: datetime, **changes: object) -> Situation:
    following = next_decision_point(at, NY, (8, 20), DEFAULT_POLICY)
    base = Situation(at=at, now=at, following=following, draw=0.5)
    return replace(base, **changes)  # type: ignore[arg-type]


def nudge(at: datetime, kind: Kind = Kind.ACTIVITY, channel: str = "sms") -> PastNudge:
    return PastNudge(kind=kind, template="activity_learning_1", channel=channel, at=at)  # type: ignore[arg-type]


# --- the grid -------------------------------------------------------------------------


def test_three_points_a_day_in_the_middle_of_each_third_of_the_window() -> None:
    points = decision_points(date(2026, 4, 6), NY, (8, 20), DEFAULT_POLICY)
    assert [p.astimezone(ZONE).strftime("%H:%M") for p in points] == ["10:00", "14:00", "18:00"]
    narrowed = decision_points(date(2026, 4, 6), NY, (9, 12), DEFAULT_POLICY)
    assert [p.astimezone(ZONE).strftime("%H:%M") for p in narrowed] == ["09:30", "10:30", "11:30"]


def test_points_keep_local_time_across_a_daylight_saving_change() -> None:
    before = decision_points(date(2026, 3, 7), NY, (8, 20), DEFAULT_POLICY)
    after = decision_points(date(2026, 3, 8), NY, (8, 20), DEFAULT_POLICY)
    assert [p.astimezone(ZONE).hour for p in before] == [10, 14, 18]
    assert [p.astimezone(ZONE).hour for p in after] == [10, 14, 18]
    assert after[0] - before[0] == timedelta(hours=23)


def test_next_point_is_strictly_later_and_the_evening_one_is_the_days_last() -> None:
    evening = local(6, 18)
    assert next_decision_point(local(6, 14), NY, (8, 20), DEFAULT_POLICY) == evening
    assert next_decision_point(evening, NY, (8, 20), DEFAULT_POLICY) == local(7, 10)
    assert is_last_point_of_day(evening, NY, (8, 20), DEFAULT_POLICY)
    assert not is_last_point_of_day(local(6, 14), NY, (8, 20), DEFAULT_POLICY)
    send, closes = survey_time(evening, NY, (8, 20), DEFAULT_POLICY)
    assert send == local(6, 19)
    assert closes == local(6, 20)
    assert DECISIONS_PER_DAY == 3


# --- what makes a point unavailable -----------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "context", "reason"),
    [
        ({}, {"flagged": True}, Reason.CRISIS),
        ({}, {"channel_active": False}, Reason.STOPPED),
        ({"paused_until": local(8, 9)}, {}, Reason.PAUSE),
        ({}, {"outstanding": True}, Reason.OUTSTANDING),
        ({}, {"now": local(6, 15, 4) + timedelta(minutes=5)}, Reason.LATE),
    ],
)
def test_holds_send_nothing_and_are_logged_with_their_reason(
    changes: dict[str, object], context: dict[str, object], reason: Reason
) -> None:
    decision = decide(state(**changes), situation(local(6, 14), **context), DEFAULT_POLICY)
    assert (decision.available, decision.reason, decision.chosen) == (False, reason, "none")
    assert decision.nudge is None
    assert decision.probabilities == (1.0,)


def test_the_welcome_is_v1s_own_and_goes_with_probability_one() -> None:
    decision = decide(state(welcomed=False), situation(local(6, 14)), DEFAULT_POLICY)
    assert not decision.available
    assert decision.reason == Reason.WELCOME
    assert decision.chosen == "welcome"
    assert decision.probability_map()["welcome"] == 1.0
    assert decision.nudge is not None
    assert decision.nudge.kind == Kind.WELCOME


def test_after_me_the_restraint_hold_is_not_randomised() -> None:
    held = state(contacts=(ContactEntry("me", local(5, 21)),))
    decision = decide(held, situation(local(6, 14)), DEFAULT_POLICY)
    assert not decision.available
    assert decision.reason == Reason.RESTRAINT_HOLD
    assert decision.chosen in ("restraint", "none")
    assert max(decision.probabilities) == 1.0


def test_a_point_outside_the_window_is_unavailable() -> None:
    late = state(hours=(8, 12))  # own hours end at noon: the 18:00 point is not theirs
    decision = decide(late, situation(local(6, 18)), DEFAULT_POLICY)
    assert decision.reason == Reason.WINDOW


def test_spacing_cap_and_cadence_make_a_point_unavailable() -> None:
    at = local(6, 14)
    spaced = state(recent_nudges=(nudge(at - timedelta(hours=2)),))
    assert decide(spaced, situation(at), DEFAULT_POLICY).reason == Reason.SPACING
    capped = state(recent_nudges=tuple(nudge(at - timedelta(hours=h)) for h in (4, 8, 20)))
    assert decide(capped, situation(at), DEFAULT_POLICY).reason == Reason.CAP
    # By email the SMS cap does not apply.
    emailed = replace(
        capped,
        channel="email",
        recent_nudges=tuple(replace(n, channel="email") for n in capped.recent_nudges),
    )
    assert decide(emailed, situation(at), DEFAULT_POLICY).available
    weekly = state(
        cadence_per_week=3, recent_nudges=tuple(nudge(at - timedelta(days=d)) for d in (1, 2, 3))
    )
    assert decide(weekly, situation(at), DEFAULT_POLICY).reason == Reason.CADENCE


def test_the_daily_question_keeps_one_sms_of_the_cap() -> None:
    at = local(6, 14)
    two = state(recent_nudges=tuple(nudge(at - timedelta(hours=h)) for h in (4, 20)))
    assert decide(two, situation(at), DEFAULT_POLICY).available
    assert decide(two, situation(at, survey=True), DEFAULT_POLICY).reason == Reason.CAP


# --- the randomisation ----------------------------------------------------------------


@pytest.mark.parametrize("cadence", [3, 7, 14, 21])
def test_whether_and_which_each_have_probabilities_in_the_bounds(cadence: int) -> None:
    at = local(6, 18)
    decision = decide(
        state(cadence_per_week=cadence), situation(at, pattern=_evening(1.0)), DEFAULT_POLICY
    )
    assert decision.available
    assert decision.policy == POLICY_EXPERIMENT
    p = decision.probability_map()
    assert sum(p.values()) == pytest.approx(1.0)
    low, high = NUDGE_PROBABILITY_BOUNDS
    nudging = 1 - p["none"]
    assert low - 1e-12 <= nudging <= high + 1e-12
    assert nudging == pytest.approx(min(max(cadence / 21, low), high))
    kinds = [o for o in p if o != "none"]
    assert set(kinds) == {str(o) for o in Option if o != Option.NONE}
    for kind in kinds:
        assert low - 1e-12 <= p[kind] / nudging <= high + 1e-12


def test_risky_hour_timing_is_offered_only_before_the_riskiest_hour() -> None:
    for hour, offered in ((10, False), (14, False), (18, True)):
        decision = decide(state(), situation(local(6, hour), pattern=_evening(1.0)), DEFAULT_POLICY)
        assert ("restraint_risky_hour" in decision.options) is offered
    assert (
        "restraint_risky_hour"
        not in decide(state(), situation(local(6, 18)), DEFAULT_POLICY).options
    )


def test_the_draw_picks_the_option_whose_slice_holds_it() -> None:
    at = local(6, 14)
    cut = decide(state(), situation(at, draw=0.0), DEFAULT_POLICY).probability_map()["none"]
    assert decide(state(), situation(at, draw=cut - 1e-9), DEFAULT_POLICY).chosen == "none"
    chosen = decide(state(), situation(at, draw=cut + 1e-9), DEFAULT_POLICY)
    assert chosen.chosen == "restraint"
    assert chosen.nudge is not None
    assert chosen.nudge.kind == Kind.RESTRAINT
    assert chosen.nudge.scheduled_for == at
    assert chosen.nudge.rule == "experiment_restraint"
    assert decide(state(), situation(at, draw=0.999999), DEFAULT_POLICY).chosen == "patience"


def test_no_activity_is_offered_while_a_done_sinks_in() -> None:
    at = local(6, 14)
    decision = decide(state(last_done_at=at - timedelta(hours=3)), situation(at), DEFAULT_POLICY)
    assert "activity" not in decision.options
    assert all(
        0.2 <= p / (1 - decision.probabilities[0]) <= 0.8 for p in decision.probabilities[1:]
    )


def test_opted_out_people_get_v1_with_probability_one() -> None:
    decision = decide(state(), situation(local(6, 14), randomise=False), DEFAULT_POLICY)
    assert decision.policy == POLICY_V1_GRID
    assert decision.available
    assert max(decision.probabilities) == 1.0
    assert decision.draw is None


# --- risky-hour timing (SigmaScheduling) -------------------------------------------------


def _evening(width: float) -> list[float]:
    """Shares peaked at 21:00 on weekdays, spread by ``width`` hours."""
    weights = [2.718 ** (-0.5 * ((h % 24 - 21) / width) ** 2) + 1e-6 for h in range(BINS)]
    total = sum(weights)
    return [w / total for w in weights]


def test_the_reminder_goes_a_standard_deviation_before_the_predicted_time() -> None:
    at = local(6, 18)
    following = next_decision_point(at, NY, (8, 20), DEFAULT_POLICY)
    mean, _sd = predicted_time(_evening(0.7), at, following, ZONE)
    assert timedelta(hours=2.5) < mean < timedelta(hours=3.5)  # about 21:00
    sent = risky_send_time(_evening(0.7), at, following, state(), DEFAULT_POLICY)
    # 21:00 minus about 0.7 h is after the window: it goes at the last moment inside it.
    assert sent == local(6, 20) - timedelta(minutes=15)


def test_an_uncertain_prediction_moves_the_reminder_earlier() -> None:
    at, following = local(6, 10), local(6, 14)
    shares = [0.0] * BINS
    shares[12] = 1.0  # always noon: precise
    sharp = risky_send_time(shares, at, following, state(), DEFAULT_POLICY)
    spread = [0.0] * BINS
    for hour in (10, 11, 12, 13):
        spread[hour] = 0.25
    loose = risky_send_time(spread, at, following, state(), DEFAULT_POLICY)
    assert at <= loose < sharp <= following - DEFAULT_POLICY.min_spacing


def test_the_risky_reminder_never_leaves_the_window_nor_precedes_its_point() -> None:
    for hour in (10, 14, 18):
        at = local(6, hour)
        following = next_decision_point(at, NY, (8, 20), DEFAULT_POLICY)
        for width in (0.3, 1.0, 4.0):
            sent = risky_send_time(_evening(width), at, following, state(), DEFAULT_POLICY)
            assert at <= sent < local(6, 20)
            assert sent <= max(at, following - DEFAULT_POLICY.min_spacing)
