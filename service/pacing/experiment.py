"""Decision points, and the micro-randomised choice at each (PRODUCT.md, "Learning what helps").

Pure, like the rest of pacing: the planner passes in everything, the seeded draw included.
Where the points fall and when a risky-hour reminder goes: service.pacing.decision_times.

A decision (``decide``); the first group that applies wins
    1. Holds (unavailable, nothing goes): crisis (flagged), stopped (no active channel),
       pause, outstanding (a nudge is still scheduled or in flight), late (the planner
       reached the point more than ``LATE_AFTER`` after it: the service was down).
    2. Pacing v1's own rules (unavailable, never randomised): the welcome, the check-in
       after a quiet spell, the restraint hold after ME. v1 plans the nudge; it goes at
       v1's time if that is before the next point, else nothing goes. Probability 1.
    3. Limits (unavailable, nothing goes): window, spacing (a nudge within
       ``min_spacing``), cap (the rolling 24 h SMS cap, less the one SMS kept for the
       daily question when that is on), cadence (the last 7 days hold the person's
       effective cadence already).
    4. Available. Without randomisation (opted out, policy ``v1-grid``): v1 decides, with
       probability 1. Otherwise a nudge goes with probability
       ``p = clip(cadence / (7 D), 0.2, 0.8)`` (the chosen pace, on average) and its kind is
       drawn uniformly from the kinds that can go: restraint, restraint at the risky hour,
       activity (when an idea is free), patience. "Whether" and "which" each have every
       probability in [0.2, 0.8]. The draw is the planner's seeded uniform number.
       Restraint at the risky hour is offered only at the point whose span (up to the
       next point) holds the person's riskiest hour of the coming day: at the others
       there is nothing to time it against.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from operator import attrgetter
from zoneinfo import ZoneInfo

from service.messages.catalog import Kind
from service.pacing.decision_times import (
    DECISIONS_PER_DAY,
    riskiest_hour_ahead,
    risky_send_time,
)
from service.pacing.rules import (
    PacingPolicy,
    PlannedNudge,
    SubscriberState,
    _checkin_due,
    _choose_activity,
    _last_contact_is_recent_me,
    effective_cadence,
    plan_next,
)
from service.pacing.variants import choose_patience, choose_restraint
from service.pacing.window import (
    NoSharedWindow,
    Zones,
    is_in_window,
    sending_zones,
    window_closing_for,
    window_hours,
)

# Past nudges in time order, ties by template (a C key: the sort runs for every person).
_BY_TIME = attrgetter("at", "template")

NUDGE_PROBABILITY_BOUNDS = (0.2, 0.8)
LATE_AFTER = timedelta(hours=1)
CADENCE_PERIOD = timedelta(days=7)
ROLLING_SMS_PERIOD = timedelta(hours=24)

POLICY_V1 = "v1"  # STEADY_EXPERIMENT off: the planner's own moments, v1's choice
POLICY_V1_GRID = "v1-grid"  # experiment on, this person opted out: v1 at the points
POLICY_EXPERIMENT = "mrt-1"  # experiment on: randomised at available points


class Option(StrEnum):
    NONE = "none"
    RESTRAINT = "restraint"
    RISKY_HOUR = "restraint_risky_hour"
    ACTIVITY = "activity"
    PATIENCE = "patience"


RANDOMISED: tuple[Option, ...] = (
    Option.RESTRAINT,
    Option.RISKY_HOUR,
    Option.ACTIVITY,
    Option.PATIENCE,
)
OPTION_RULES = {
    Option.RESTRAINT: "experiment_restraint",
    Option.RISKY_HOUR: "experiment_risky_hour",
    Option.ACTIVITY: "experiment_activity",
    Option.PATIENCE: "experiment_patience",
}


class Reason(StrEnum):
    CRISIS = "crisis"
    STOPPED = "stopped"
    PAUSE = "pause"
    OUTSTANDING = "outstanding"
    LATE = "late"
    WELCOME = "welcome"
    CHECKIN = "checkin"
    RESTRAINT_HOLD = "restraint_hold"
    WINDOW = "window"
    SPACING = "spacing"
    CAP = "cap"
    CADENCE = "cadence"


@dataclass(frozen=True)
class Situation:
    """What the planner knows of one decision point besides the pacing state."""

    at: datetime  # the decision point (aware)
    now: datetime  # when it is decided (>= at, a little later when the planner runs late)
    following: datetime  # the next decision point
    flagged: bool = False
    channel_active: bool = True
    outstanding: bool = False
    randomise: bool = True  # experiment on and the person has not opted out
    draw: float = 0.0  # uniform on [0, 1), seeded by the planner
    pattern: Sequence[float] | None = None  # predicted shares (risky_hours.BINS)
    survey: bool = False  # the daily question keeps one SMS of the cap


@dataclass(frozen=True)
class Decision:
    at: datetime
    available: bool
    reason: str | None
    options: tuple[str, ...]
    probabilities: tuple[float, ...]  # aligned with options
    chosen: str
    policy: str
    draw: float | None = None
    nudge: PlannedNudge | None = None

    def probability_map(self) -> dict[str, float]:
        return dict(zip(self.options, self.probabilities, strict=True))


# --- one decision --------------------------------------------------------------------


def decide(state: SubscriberState, situation: Situation, policy: PacingPolicy) -> Decision:
    """The decision at one point (the module docstring gives the order)."""
    s, now = situation, situation.now.astimezone(UTC)
    hold = _hold(state, s)
    if hold is not None:
        return _unavailable(s, hold)
    try:
        fixed = _fixed_rule(state, now, policy)
        if fixed is not None:
            return _v1(s, plan_next(state, now, policy), available=False, reason=fixed)
        limit = _limit(state, s, policy)
        if limit is not None:
            return _unavailable(s, limit)
        if not s.randomise:
            return _v1(s, plan_next(state, now, policy), available=True, reason=None)
    except NoSharedWindow:
        # Candidate zones that share no hours (the person has not named theirs yet).
        return _unavailable(s, Reason.WINDOW)
    return _randomised(state, s, policy)


def _zones(state: SubscriberState) -> Zones:
    """Every zone whose hours a nudge keeps (all candidates until the person names one)."""
    return sending_zones(state.timezone, state.candidate_zones)


def _hold(state: SubscriberState, s: Situation) -> Reason | None:
    if s.flagged:
        return Reason.CRISIS
    if not s.channel_active:
        return Reason.STOPPED
    if state.paused_until is not None and state.paused_until > s.now:
        return Reason.PAUSE
    if s.outstanding:
        return Reason.OUTSTANDING
    if s.now - s.at > LATE_AFTER:
        return Reason.LATE
    return None


def _fixed_rule(state: SubscriberState, now: datetime, policy: PacingPolicy) -> Reason | None:
    if not state.welcomed and not any(n.kind == Kind.WELCOME for n in state.recent_nudges):
        return Reason.WELCOME
    if _checkin_due(state, now, policy):
        return Reason.CHECKIN
    if _last_contact_is_recent_me(state, now, policy):
        return Reason.RESTRAINT_HOLD
    return None


def _limit(state: SubscriberState, s: Situation, policy: PacingPolicy) -> Reason | None:
    at = max(s.at, s.now)
    if not is_in_window(at, _zones(state), *window_hours(state.hours, policy)):
        return Reason.WINDOW
    if any(abs(at - n.at) < policy.min_spacing for n in state.recent_nudges):
        return Reason.SPACING
    cap = policy.max_sms_per_24h - (1 if s.survey else 0)
    if state.channel == "sms":
        sent = sum(
            1 for n in state.recent_nudges if n.channel == "sms" and n.at > at - ROLLING_SMS_PERIOD
        )
        if sent + 1 > cap:
            return Reason.CAP
    week = sum(1 for n in state.recent_nudges if n.at > at - CADENCE_PERIOD)
    if week >= effective_cadence(state, at, policy):
        return Reason.CADENCE
    return None


def nudge_probability(state: SubscriberState, at: datetime, policy: PacingPolicy) -> float:
    low, high = NUDGE_PROBABILITY_BOUNDS
    per_point = effective_cadence(state, at, policy) / (7 * DECISIONS_PER_DAY)
    return min(max(per_point, low), high)


def _randomised(state: SubscriberState, s: Situation, policy: PacingPolicy) -> Decision:
    at = max(s.at, s.now)
    activity = _activity_template(state, at, policy)
    risky = s.pattern is not None and riskiest_hour_ahead(
        s.pattern, at, s.following, ZoneInfo(state.timezone)
    )
    kinds = [
        o
        for o in RANDOMISED
        if (o != Option.ACTIVITY or activity is not None) and (o != Option.RISKY_HOUR or risky)
    ]
    p = nudge_probability(state, at, policy)
    options = (Option.NONE, *kinds)
    probabilities = (1 - p, *(p / len(kinds) for _ in kinds))
    chosen = _pick(options, probabilities, s.draw)
    nudge = None
    if chosen != Option.NONE:
        nudge = _nudge(state, s, policy, chosen, activity)
    # Positional (at, available, reason, options, probabilities, chosen, policy, draw,
    # nudge): a frozen dataclass takes keywords at twice the cost, once per person.
    return Decision(
        s.at,
        True,
        None,
        tuple([str(o) for o in options]),
        probabilities,
        str(chosen),
        POLICY_EXPERIMENT,
        s.draw,
        nudge,
    )


def _pick(options: Sequence[Option], probabilities: Sequence[float], draw: float) -> Option:
    """The option whose slice of [0, 1) holds the draw (none first)."""
    total = 0.0
    for option, probability in zip(options, probabilities, strict=True):
        total += probability
        if draw < total:
            return option
    return options[-1]  # a draw a rounding error short of 1


def _activity_template(state: SubscriberState, at: datetime, policy: PacingPolicy) -> str | None:
    if state.last_done_at is not None and at - state.last_done_at < policy.activity_rest_after_done:
        return None  # a DONE is still sinking in (v1's rule)
    history = sorted(state.recent_nudges, key=_BY_TIME)
    return _choose_activity(history, state, at, policy)


def _nudge(
    state: SubscriberState,
    s: Situation,
    policy: PacingPolicy,
    chosen: Option,
    activity: str | None,
) -> PlannedNudge:
    said = [n.template for n in sorted((*state.recent_nudges, *state.recent_replies), key=_BY_TIME)]
    send = max(s.at, s.now)
    if chosen == Option.ACTIVITY and activity is not None:
        kind, template = Kind.ACTIVITY, activity
    elif chosen == Option.PATIENCE:
        kind, template = Kind.PATIENCE, choose_patience(said, state.subscriber_id)
    else:
        kind, template = Kind.RESTRAINT, choose_restraint(said, state.subscriber_id)
        if chosen == Option.RISKY_HOUR and s.pattern is not None:
            send = risky_send_time(s.pattern, send, s.following, state, policy)
    closing = window_closing_for(send, _zones(state), *window_hours(state.hours, policy))
    return PlannedNudge(
        kind=kind,
        template=template,
        rule=OPTION_RULES[chosen],
        scheduled_for=send.astimezone(UTC),
        expires_at=min(send + policy.expiry_grace, closing).astimezone(UTC),
    )


# --- rows without randomisation --------------------------------------------------------


def _unavailable(s: Situation, reason: Reason) -> Decision:
    # Positional (at, available, reason, options, probabilities, chosen, policy): as
    # in `_randomised`, a frozen dataclass's keywords cost twice as much.
    return Decision(
        s.at,
        False,
        str(reason),
        (str(Option.NONE),),
        (1.0,),
        str(Option.NONE),
        POLICY_EXPERIMENT if s.randomise else POLICY_V1_GRID,
    )


def _v1(s: Situation, plan: PlannedNudge, *, available: bool, reason: Reason | None) -> Decision:
    """v1's choice, with probability 1: its nudge if v1 sends it before the next point."""
    goes = plan.scheduled_for < s.following
    chosen = str(plan.kind) if goes else str(Option.NONE)
    return Decision(
        at=s.at,
        available=available,
        reason=None if reason is None else str(reason),
        options=(str(Option.NONE), chosen) if goes else (str(Option.NONE),),
        probabilities=(0.0, 1.0) if goes else (1.0,),
        chosen=chosen,
        policy=POLICY_EXPERIMENT if s.randomise else POLICY_V1_GRID,
        nudge=plan if goes else None,
    )


def v1_logged(at: datetime, plan: PlannedNudge | None, reason: str | None) -> Decision:
    """A row for the planner's own moments while the experiment is off: v1's nudge (its
    kind, probability 1), or the reason nothing was planned."""
    if plan is None:
        return Decision(
            at=at,
            available=False,
            reason=reason,
            options=(str(Option.NONE),),
            probabilities=(1.0,),
            chosen=str(Option.NONE),
            policy=POLICY_V1,
        )
    return Decision(
        at=at,
        available=True,
        reason=None,
        options=(str(Option.NONE), str(plan.kind)),
        probabilities=(0.0, 1.0),
        chosen=str(plan.kind),
        policy=POLICY_V1,
        nudge=plan,
    )
