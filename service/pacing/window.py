"""Sending-window time arithmetic for pacing: local wall-clock hours as UTC instants.

Pure functions, no clock reads. A window is the half-open local wall-clock range
``[start_hour:00, end_hour:00)`` of one local date, expressed as two UTC instants;
for a nudge it is the legal window narrowed by the subscriber's own hours
(``window_hours``).

Daylight-saving changes make local wall times ambiguous (a fall-back fold happens
twice) or missing (a spring-forward gap never happens). Every bound is therefore
built from both ``fold`` readings of the wall time and normalised through a UTC
round trip, always erring towards a *narrower* window:

- the opening is the earliest instant whose wall time is at or after the start
  (in a gap that is a little after the start, never before it);
- the closing is the earliest instant whose wall time may reach the end (in a gap
  that is a little before it, never after).

A candidate instant is then also checked against its own wall time, so a window
boundary inside a fold can never let a nudge out at a wall time outside the hours.

Several zones (PRODUCT.md, "Law": quiet hours wherever the subscriber lives). A
number that fits several zones (a split US area code, an Australian mobile) and
whose owner has not named theirs is held to every one of them: a nudge goes only
at an instant that is inside the window *in each zone*, on each zone's own local
date and DST rules, so the shared window is worked out afresh for every day
(US Eastern + Central: 09:00-20:00 Eastern). Candidates so far apart that no
instant is inside all their windows share no hours: ``NoSharedWindow`` is raised
and no nudge is planned until the person names a zone (replies still go at once).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo

# How many local days ahead to look for a usable window. One is normally enough;
# the extra days cover a date that a zone skipped entirely (Pacific/Apia skipped
# 2011-12-30) or a window emptied by a daylight-saving gap.
MAX_DAYS_SEARCHED = 4
# The longest cadence gap (1 a week, in a one-hour window) walks 8 windows.
MAX_WINDOW_DAYS_WALKED = 32
# The SMS cap counts over any rolling 24 hours (PRODUCT.md, "Pacing v1").
ROLLING_SMS_PERIOD = timedelta(hours=24)
# The constraints settle in two or three rounds; the bound only guards against a bug.
MAX_SETTLING_ROUNDS = 64


# The zones a nudge must keep the hours of (one, unless the zone is still uncertain).
Zones = tuple[ZoneInfo, ...]


class NoSharedWindow(ValueError):
    """The candidate zones share no sending hours within the days searched."""


class WindowLimits(Protocol):
    """The legal sending window of a pacing policy (``service.pacing.rules.PacingPolicy``)."""

    @property
    def window_start_hour(self) -> int: ...

    @property
    def window_end_hour(self) -> int: ...


def require_aware(at: datetime, name: str) -> None:
    """Refuse a naive datetime: every instant pacing handles is absolute."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def local_wall_time(at: datetime, tz: ZoneInfo) -> datetime:
    """Return the naive local wall-clock reading of a tz-aware instant."""
    return at.astimezone(tz).replace(tzinfo=None)


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time())


def _both_readings(wall: datetime, tz: ZoneInfo) -> list[datetime]:
    """Both UTC instants a naive wall time may denote (equal outside DST changes)."""
    return [wall.replace(tzinfo=tz, fold=fold).astimezone(UTC) for fold in (0, 1)]


def _opening(day: date, hour: int, tz: ZoneInfo) -> datetime:
    """The earliest UTC instant on ``day`` whose wall time is at or after ``hour``:00."""
    wall = _local_midnight(day) + timedelta(hours=hour)
    readings = _both_readings(wall, tz)
    # In a gap, one reading lands before the requested wall time: drop it.
    not_early = [at for at in readings if local_wall_time(at, tz) >= wall]
    return min(not_early) if not_early else max(readings)


def _closing(day: date, hour: int, tz: ZoneInfo) -> datetime:
    """A UTC instant no later than the first one on ``day`` whose wall time reaches ``hour``:00."""
    wall = _local_midnight(day) + timedelta(hours=hour)
    # The earlier reading is never after the true closing, gap or fold alike.
    return min(_both_readings(wall, tz))


@lru_cache(maxsize=8192)
def window_bounds(
    day: date, tz: ZoneInfo, start_hour: int, end_hour: int
) -> tuple[datetime, datetime]:
    """Return the UTC ``(opening, closing)`` of ``day``'s local window.

    ``end_hour`` may be 24 (midnight at the end of the day). The window is empty
    (``opening >= closing``) only on a date the zone skipped. Cached: the planner
    asks for the same few (day, zone, hours) for every subscriber of a batch.
    """
    return _opening(day, start_hour, tz), _closing(day, end_hour, tz)


def _wall_time_fits(at: datetime, tz: ZoneInfo, start_hour: int, end_hour: int) -> bool:
    """Whether the wall time of ``at`` is in ``[start_hour:00, end_hour:00)``: with whole
    hours, exactly when its hour is in ``[start_hour, end_hour)``."""
    return start_hour <= at.astimezone(tz).hour < end_hour


def _in_zone_window(at: datetime, tz: ZoneInfo, start_hour: int, end_hour: int) -> bool:
    """Whether ``at`` lies in its own local date's window, by instant and by wall time."""
    local = at.astimezone(tz)
    opening, closing = window_bounds(local.date(), tz, start_hour, end_hour)
    return opening <= at < closing and start_hour <= local.hour < end_hour


def _earliest_in_zone(at: datetime, tz: ZoneInfo, start_hour: int, end_hour: int) -> datetime:
    """``at`` if it is inside one zone's window, else that zone's next opening after it."""
    first_day = at.astimezone(tz).date()
    for days_ahead in range(MAX_DAYS_SEARCHED):
        opening, closing = window_bounds(
            first_day + timedelta(days=days_ahead), tz, start_hour, end_hour
        )
        candidate = max(at, opening)
        if candidate < closing and _wall_time_fits(candidate, tz, start_hour, end_hour):
            return candidate
    raise ValueError(f"no sending window within {MAX_DAYS_SEARCHED} days of {at.isoformat()}")


def split_zones(stored: str | None) -> tuple[str, ...]:
    """Candidate zones as a subscriber row keeps them: IANA names, space-separated."""
    return tuple(stored.split()) if stored else ()


def join_zones(zones: Iterable[str]) -> str | None:
    """The stored form of candidate zones; None when there are none (the zone is known)."""
    return " ".join(zones) or None


@lru_cache(maxsize=4096)
def _zone_infos(names: tuple[str, ...]) -> Zones:
    return tuple(ZoneInfo(name) for name in dict.fromkeys(names))


def sending_zones(timezone: str, candidates: Iterable[str] = ()) -> Zones:
    """The zones a nudge keeps the hours of: every candidate until the person names
    their zone, else their zone alone (PRODUCT.md, "Law")."""
    return _zone_infos(tuple(candidates) or (timezone,))


def is_in_window(at: datetime, zones: Zones, start_hour: int, end_hour: int) -> bool:
    """Whether ``at`` lies inside the window of every zone, by instant and by wall time."""
    if len(zones) == 1:
        return _in_zone_window(at, zones[0], start_hour, end_hour)
    return all(_in_zone_window(at, tz, start_hour, end_hour) for tz in zones)


def earliest_in_window(at: datetime, zones: Zones, start_hour: int, end_hour: int) -> datetime:
    """Return ``at`` if it is inside every zone's window, else the next instant that is.

    Each zone's earliest usable instant from a candidate is never later than the
    answer (the answer is inside that zone's window too), so moving the candidate
    to the latest of them and repeating finds the earliest shared instant; each
    round jumps to some zone's opening, so few rounds are needed. Raises
    ``NoSharedWindow`` when none comes within ``MAX_DAYS_SEARCHED`` days.
    """
    if len(zones) == 1:
        return _earliest_in_zone(at, zones[0], start_hour, end_hour)
    give_up = at + timedelta(days=MAX_DAYS_SEARCHED)
    candidate = at
    while candidate <= give_up:
        moved = max(_earliest_in_zone(candidate, tz, start_hour, end_hour) for tz in zones)
        if moved == candidate:
            return candidate
        candidate = moved
    raise NoSharedWindow(
        f"{len(zones)} zones share no sending hours within {MAX_DAYS_SEARCHED} days"
    )


def window_closing_for(at: datetime, zones: Zones, start_hour: int, end_hour: int) -> datetime:
    """Return the closing instant of the (shared) window that ``at`` lies in."""
    if len(zones) == 1:
        tz = zones[0]
        return window_bounds(at.astimezone(tz).date(), tz, start_hour, end_hour)[1]
    return min(window_bounds(at.astimezone(tz).date(), tz, start_hour, end_hour)[1] for tz in zones)


def daily_window_time(at: datetime, zones: Zones, start_hour: int, end_hour: int) -> timedelta:
    """How much sending time one day holds: the hours in one zone; for several zones,
    their shared window on the day of the next one from ``at`` (it varies with DST)."""
    if len(zones) == 1:
        return timedelta(hours=end_hour - start_hour)
    reference = zones[0]
    day = local_wall_time(earliest_in_window(at, zones, start_hour, end_hour), reference).date()
    day_opening = window_bounds(day, reference, start_hour, end_hour)[0]
    opening = earliest_in_window(day_opening, zones, start_hour, end_hour)
    return window_closing_for(opening, zones, start_hour, end_hour) - opening


def add_window_time(
    start: datetime, duration: timedelta, zones: Zones, start_hour: int, end_hour: int
) -> datetime:
    """Return the instant ``duration`` of sending-window time after ``start``.

    Time outside the windows does not count: 2 h after 19:00 in an 08-20 window
    is 09:00 the next day.
    """
    at, remaining = start, duration
    for _ in range(MAX_WINDOW_DAYS_WALKED):
        at = earliest_in_window(at, zones, start_hour, end_hour)
        closing = window_closing_for(at, zones, start_hour, end_hour)
        if remaining < closing - at:
            return at + remaining
        remaining -= closing - at
        at = closing
    raise ValueError(f"{duration} of window time runs past {MAX_WINDOW_DAYS_WALKED} windows")


def window_hours(state_hours: tuple[int, int], policy: WindowLimits) -> tuple[int, int]:
    """The legal window narrowed by the subscriber's hours.

    Hours that leave nothing of the legal window (start >= end after narrowing) are
    not a choice anyone can make on the preferences page; they fall back to the
    legal window rather than silence the subscriber for ever.
    """
    start = max(policy.window_start_hour, state_hours[0])
    end = min(policy.window_end_hour, state_hours[1])
    return (start, end) if start < end else (policy.window_start_hour, policy.window_end_hour)


def sending_window(
    day: date, tz: ZoneInfo, state_hours: tuple[int, int], policy: WindowLimits
) -> tuple[datetime, datetime]:
    """UTC ``(opening, closing)`` of ``day``'s local sending window (closing exclusive)."""
    return window_bounds(day, tz, *window_hours(state_hours, policy))


def in_sending_window(
    at: datetime,
    timezone: str,
    hours: tuple[int, int],
    policy: WindowLimits,
    *,
    candidates: Iterable[str] = (),
) -> bool:
    """Whether a nudge may go out at ``at``: the dispatcher's last guard.

    ``candidates`` are the zones the subscriber may be in while they have not named
    one: the instant must be inside the window in each of them.
    """
    require_aware(at, "at")
    return is_in_window(at, sending_zones(timezone, candidates), *window_hours(hours, policy))


def shares_sending_hours(
    at: datetime, zones: Iterable[str], hours: tuple[int, int], policy: WindowLimits
) -> bool:
    """Whether the zones have a shared sending window within a few days of ``at``."""
    try:
        earliest_in_window(at, _zone_infos(tuple(zones)), *window_hours(hours, policy))
    except NoSharedWindow:
        return False
    return True


def _after_spacing(
    at: datetime, spaced_from: Sequence[datetime], min_spacing: timedelta
) -> datetime:
    """Move ``at`` past every instant it is closer than ``min_spacing`` to."""
    for other in sorted(spaced_from):
        if abs(at - other) < min_spacing:
            at = other + min_spacing
    return at


def _after_sms_cap(at: datetime, sms_sent: Sequence[datetime], cap: int) -> datetime:
    """Move ``at`` until the rolling 24 h up to it holds fewer than ``cap`` SMS."""
    counted = sorted(sent for sent in sms_sent if at - ROLLING_SMS_PERIOD < sent <= at)
    excess = len(counted) - (cap - 1)
    if excess > 0:
        # Wait until enough of the oldest have left the 24 h before the new one.
        at = counted[excess - 1] + ROLLING_SMS_PERIOD
    return at


def settle_in_window(
    earliest: datetime,
    zones: Zones,
    hours: tuple[int, int],
    *,
    spaced_from: Sequence[datetime],
    min_spacing: timedelta,
    sms_sent: Sequence[datetime] | None,
    max_sms_per_24h: int,
) -> datetime:
    """The first instant from ``earliest`` that keeps spacing, the SMS cap and the window.

    ``sms_sent`` is None when the new message is not an SMS (the cap does not apply).
    Each step only moves the time later, so they are repeated until none moves it.
    Callers pass an ``earliest`` after every instant in ``spaced_from`` and
    ``sms_sent``, so only the 24 h *before* the new SMS can hold too many.
    """
    at = earliest
    for _ in range(MAX_SETTLING_ROUNDS):
        moved = _after_spacing(at, spaced_from, min_spacing)
        if sms_sent is not None:
            moved = _after_sms_cap(moved, sms_sent, max_sms_per_24h)
        moved = earliest_in_window(moved, zones, *hours)
        if moved == at:
            return at
        at = moved
    raise RuntimeError(f"sending time did not settle from {earliest.isoformat()}")


# Zones with whole-hour offsets around the globe: one of them is always near mid-day.
ROUND_THE_CLOCK_ZONES = (
    "Pacific/Honolulu",
    "America/Anchorage",
    "America/Los_Angeles",
    "America/Denver",
    "America/Chicago",
    "America/New_York",
    "America/Sao_Paulo",
    "Atlantic/South_Georgia",
    "Atlantic/Azores",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Athens",
    "Europe/Moscow",
    "Asia/Dubai",
    "Asia/Karachi",
    "Asia/Dhaka",
    "Asia/Bangkok",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Brisbane",
    "Pacific/Noumea",
    "Pacific/Auckland",
    "Pacific/Tongatapu",
    "Pacific/Kiritimati",
)


def midday_zone(now: datetime) -> str:
    """The zone where ``now`` is closest to 14:00, well inside any sending window.

    For synthetic subscribers (`steady bench`, the process tests) whose nudges must
    be sendable the moment they are planned.
    """

    def distance(zone: str) -> float:
        local = now.astimezone(ZoneInfo(zone))
        return abs(local.hour + local.minute / 60 - 14)

    return min(ROUND_THE_CLOCK_ZONES, key=distance)
