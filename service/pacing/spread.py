"""Spreading a window's nudges: each person keeps a time of their own (issue 13).

Left alone, the planner puts everyone whose cadence points before the window at
its opening (08:00:00 local), and everyone planned at once (an import, the first
beat after a restart) at the moment it ran: thousands of sends due in the same
second, against a sender that takes one to a hundred segments a second. So a
time that pacing *chose* (the window's opening, or `now`) moves on by an offset
that belongs to the subscriber: a fixed fraction of `span` from their id, by the
golden-ratio (Weyl) sequence, which spreads consecutive ids evenly over the span.
A time that something else set (the cadence after their last nudge, spacing,
the SMS cap) is kept: it is already their own, so people keep the time of day
they started with and the spread does not drift from day to day.

Pure: no clock, no settings; the span arrives in the policy.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from service.pacing.window import Zones, is_in_window, window_closing_for

# A time is a window's opening when the second before it is outside the window.
_JUST_BEFORE = timedelta(seconds=1)

# 2^64 / golden ratio, odd: multiplying by it scrambles ids into well-spread fractions.
_GOLDEN = 0x9E3779B97F4A7C15
_TWO_64 = 1 << 64


def spread_fraction(subscriber_id: int) -> float:
    """A fraction in [0, 1) fixed for the subscriber, evenly spread over consecutive ids."""
    return ((subscriber_id * _GOLDEN) % _TWO_64) / _TWO_64


def spread_in_window(
    at: datetime,
    now: datetime,
    zones: Zones,
    hours: tuple[int, int],
    subscriber_id: int,
    span: timedelta,
) -> datetime:
    """`at`, moved by the subscriber's share of `span` when pacing chose it (opening or now).

    `zones` are the zones whose hours the nudge keeps (one, or every candidate):
    the window is the one they share. The offset stays within the first half of
    what is left of that window, so a spread nudge still has the rest to go out in.
    """
    if span <= timedelta(0):
        return at
    at_opening = not is_in_window(at - _JUST_BEFORE, zones, *hours)
    if at != now and not at_opening:
        return at
    room = min(span, (window_closing_for(at, zones, *hours) - at) / 2)
    offset = timedelta(seconds=int(spread_fraction(subscriber_id) * room.total_seconds()))
    moved = at + offset
    return moved if is_in_window(moved, zones, *hours) else at
