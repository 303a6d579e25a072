"""When decisions happen: the points of each day, and the risky-hour reminder's time.

Pure, like the rest of pacing (PRODUCT.md, "Learning what helps"); the choice made at
each point is service.pacing.experiment.

Decision points (``decision_points``)
    While STEADY_EXPERIMENT is on, every subscriber has ``DECISIONS_PER_DAY`` points a day
    at fixed places in their own sending window: the window ``[s, e)`` of the local date is
    cut into D equal parts and each point is the middle of one (08-20: 10:00, 14:00 and
    18:00). People with the same hours share the same points, so decisions are comparable
    across people and days, and the points are 4 h apart, so the 3-hour spacing after one
    point's nudge never takes the next point away. The planner decides at every point and
    logs one row, whatever the outcome (``service.sending.decisions``).

Risky-hour timing (``risky_send_time``; SigmaScheduling, Gazi et al. 2025,
arXiv:2507.10798): over the span from the point to the next one (at most until four
hours after the window closes: a reminder works on the hours just after it, not on the
small hours), the person's predicted pattern (``service.learning.risky_hours``, their
posterior predictive: everyone's pattern while their own log is thin) gives a density of
when they would reach out;
the reminder goes one standard deviation before its mean, so earlier when the prediction
is spread out, never before the point, and always inside the window and early enough
that the next point keeps its spacing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from service.learning.risky_hours import bin_and_days
from service.pacing.rules import PacingPolicy, SubscriberState
from service.pacing.window import (
    local_wall_time,
    sending_zones,
    window_bounds,
    window_closing_for,
    window_hours,
)

DECISIONS_PER_DAY = 3
RISKY_MARGIN = timedelta(minutes=15)  # the reminder is out this long before the window shuts
RISKY_STEP = timedelta(minutes=15)  # resolution of the predicted-time density
RISKY_HORIZON_AFTER_CLOSING = timedelta(hours=4)  # how far past the window a reminder works


# --- the grid ------------------------------------------------------------------------


def decision_points(
    day: date, timezone: str, hours: tuple[int, int], policy: PacingPolicy
) -> tuple[datetime, ...]:
    """The points of one local date, as UTC instants (DST-safe: from the window's instants)."""
    opening, closing = window_bounds(day, ZoneInfo(timezone), *window_hours(hours, policy))
    if closing <= opening:
        return ()
    part = (closing - opening) / DECISIONS_PER_DAY
    return tuple(opening + part * (k + 0.5) for k in range(DECISIONS_PER_DAY))


def next_decision_point(
    after: datetime, timezone: str, hours: tuple[int, int], policy: PacingPolicy
) -> datetime:
    """The first point strictly after ``after``."""
    day = local_wall_time(after, ZoneInfo(timezone)).date()
    for ahead in range(8):
        for point in decision_points(day + timedelta(days=ahead), timezone, hours, policy):
            if point > after:
                return point
    raise ValueError(f"no decision point within a week of {after.isoformat()}")


def is_last_point_of_day(
    point: datetime, timezone: str, hours: tuple[int, int], policy: PacingPolicy
) -> bool:
    day = local_wall_time(point, ZoneInfo(timezone)).date()
    points = decision_points(day, timezone, hours, policy)
    return bool(points) and points[-1] == point


def survey_time(
    point: datetime, timezone: str, hours: tuple[int, int], policy: PacingPolicy
) -> tuple[datetime, datetime]:
    """(send at, expires at) of the daily question asked after the day's last point:
    halfway from that point to the window's closing."""
    day = local_wall_time(point, ZoneInfo(timezone)).date()
    closing = window_bounds(day, ZoneInfo(timezone), *window_hours(hours, policy))[1]
    return point + (closing - point) / 2, closing


# --- risky-hour timing ------------------------------------------------------------


def riskiest_hour_ahead(
    pattern: Sequence[float], at: datetime, following: datetime, zone: ZoneInfo
) -> bool:
    """Whether the person's riskiest hour of the next 24 h falls before the next point:
    the point whose span holds it is the one where the reminder's timing can matter."""
    rates = [pattern[b] / days for b, days in _hours_ahead(at, zone)]
    peak = max(range(24), key=rates.__getitem__)
    return at + timedelta(hours=peak) < following


@lru_cache(maxsize=1024)
def _hours_ahead(at: datetime, zone: ZoneInfo) -> tuple[tuple[int, int], ...]:
    """(bin, days a week) of the middle of each of the 24 hours from ``at``: the same for
    everyone a batch decides at one point in one zone, so worked out once."""
    return tuple(
        bin_and_days(local_wall_time(at + timedelta(hours=h, minutes=30), zone)) for h in range(24)
    )


def risky_send_time(
    pattern: Sequence[float],
    start: datetime,
    following: datetime,
    state: SubscriberState,
    policy: PacingPolicy,
) -> datetime:
    """One standard deviation before the predicted time of reaching out (module docstring)."""
    zone = ZoneInfo(state.timezone)
    closing = window_closing_for(
        start,
        sending_zones(state.timezone, state.candidate_zones),
        *window_hours(state.hours, policy),
    )
    latest = min(closing - RISKY_MARGIN, following - policy.min_spacing)
    if latest <= start:
        return start
    # Tonight, not the small hours: a reminder can only work on the next few hours.
    horizon = min(following, closing + RISKY_HORIZON_AFTER_CLOSING)
    mean, sd = predicted_time(pattern, start, horizon, zone)
    return min(max(start + mean - sd, start), latest)


def predicted_time(
    pattern: Sequence[float], start: datetime, end: datetime, zone: ZoneInfo
) -> tuple[timedelta, timedelta]:
    """Mean and standard deviation, from ``start``, of when in ``[start, end)`` the person
    would reach out, by their predicted hourly rate (steps of ``RISKY_STEP``)."""
    step_hours = RISKY_STEP / timedelta(hours=1)
    bins, middles = _steps(start, end, zone)
    weights = [pattern[b] / days * step_hours for b, days in bins]
    total = sum(weights)
    if total <= 0:
        return timedelta(0), timedelta(0)
    mean = sum(w * m for w, m in zip(weights, middles, strict=True)) / total
    spread = sum(w * (m - mean) ** 2 for w, m in zip(weights, middles, strict=True)) / total
    variance = spread + step_hours**2 / 12  # uniform within each step
    return timedelta(hours=mean), timedelta(hours=variance**0.5)


@lru_cache(maxsize=1024)
def _steps(
    start: datetime, end: datetime, zone: ZoneInfo
) -> tuple[tuple[tuple[int, int], ...], tuple[float, ...]]:
    """(bin, days a week) of the middle of each ``RISKY_STEP`` in ``[start, end)``, and the
    middles in hours from ``start`` (the same for everyone decided at one point)."""
    step_hours = RISKY_STEP / timedelta(hours=1)
    bins: list[tuple[int, int]] = []
    middles: list[float] = []
    t, offset = start, 0.0
    while t < end:
        bins.append(bin_and_days(local_wall_time(t + RISKY_STEP / 2, zone)))
        middles.append(offset + step_hours / 2)
        t += RISKY_STEP
        offset += step_hours
    return tuple(bins), tuple(middles)
