"""The time-zone test matrix, shared by the pacing and the sending tests.

Every US zone, Canada's, the UK's, Ireland's and Australia's, candidate sets that real
numbers get, and the daylight-saving changes of 2027 in either hemisphere (found
from the zone data, not typed in).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

YEAR = 2027

US_ZONES = {
    "US Eastern": "America/New_York",
    "US Central": "America/Chicago",
    "US Mountain": "America/Denver",
    "Arizona (no DST)": "America/Phoenix",
    "US Pacific": "America/Los_Angeles",
    "Alaska": "America/Anchorage",
    "Hawaii": "Pacific/Honolulu",
}
CANADA_ZONES = {
    "Newfoundland": "America/St_Johns",
    "Atlantic": "America/Halifax",
    "Eastern Canada": "America/Toronto",
    "Central Canada": "America/Winnipeg",
    "Mountain Canada": "America/Edmonton",
    "Pacific Canada": "America/Vancouver",
    "Saskatchewan": "America/Regina",
}
OTHER_ZONES = {"UK": "Europe/London", "Ireland": "Europe/Dublin"}
AUSTRALIA_ZONES = {
    "Sydney": "Australia/Sydney",
    "Brisbane": "Australia/Brisbane",
    "Adelaide": "Australia/Adelaide",
    "Darwin": "Australia/Darwin",
    "Perth": "Australia/Perth",
    "Hobart": "Australia/Hobart",
}
NAMED = {**US_ZONES, **CANADA_ZONES, **OTHER_ZONES, **AUSTRALIA_ZONES}
# Candidate sets that phonenumbers gives real numbers (tests/people/test_zones.py
# checks the numbers themselves), plus two that people never get but that stress the
# search: a set spanning half the globe and one whose shared hours vary by season.
CANDIDATE_SETS: dict[str, tuple[str, ...]] = {
    "split US area code (Eastern + Central)": ("America/New_York", "America/Chicago"),
    "North Dakota (Mountain + Central)": ("America/Denver", "America/Chicago"),
    "Idaho (Mountain + Pacific)": ("America/Boise", "America/Los_Angeles"),
    "Navajo Nation (Mountain + Arizona)": ("America/Denver", "America/Phoenix"),
    "Alaska 907": ("America/Adak", "America/Anchorage", "Pacific/Honolulu"),
    "Labrador 709 (Atlantic + Newfoundland)": ("America/Halifax", "America/St_Johns"),
    "Canada 867 (five zones)": (
        "America/Fort_Nelson",
        "America/Vancouver",
        "America/Edmonton",
        "America/Winnipeg",
        "America/Toronto",
    ),
    "Australian mobile": (
        "Australia/Adelaide",
        "Australia/Brisbane",
        "Australia/Eucla",
        "Australia/Lord_Howe",
        "Australia/Perth",
        "Australia/Sydney",
        "Indian/Christmas",
        "Indian/Cocos",
    ),
    "Sydney + Brisbane": ("Australia/Sydney", "Australia/Brisbane"),
    "UK + Ireland": ("Europe/London", "Europe/Dublin"),
    "New York + Shanghai (seasonal)": ("America/New_York", "Asia/Shanghai"),
}
ZONE_SETS: dict[str, tuple[str, ...]] = {
    **{name: (zone,) for name, zone in NAMED.items()},
    **CANDIDATE_SETS,
}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local(text: str, zone: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


@cache
def transitions(zone: str) -> tuple[date, ...]:
    """The local dates in YEAR on which the zone's clocks change (found, not typed in).

    Clocks change at night, so comparing each local noon with the one before finds them.
    """
    tz = ZoneInfo(zone)
    day, found = date(YEAR, 1, 1), []
    while day.year == YEAR:
        before = datetime.combine(day - timedelta(days=1), time(12), tz).utcoffset()
        if datetime.combine(day, time(12), tz).utcoffset() != before:
            found.append(day)
        day += timedelta(days=1)
    return tuple(found)


# Every DST change of the year in the matrix's zones, each with the day before and after.
TRANSITION_DATES = sorted(
    {day for zones in ZONE_SETS.values() for z in zones for day in transitions(z)}
)
TEST_DAYS = sorted({d + timedelta(days=k) for d in TRANSITION_DATES for k in (-1, 0, 1)})


def wall(at: datetime, zone: str) -> datetime:
    """The local wall-clock reading of an instant."""
    return at.astimezone(ZoneInfo(zone)).replace(tzinfo=None)


def inside_hours(at: datetime, zone: str, hours: tuple[int, int]) -> bool:
    """Whether the local time of ``at`` is within [start:00, end:00) in ``zone``."""
    local_time = wall(at, zone)
    since_midnight = local_time - datetime.combine(local_time.date(), time())
    return timedelta(hours=hours[0]) <= since_midnight < timedelta(hours=hours[1])


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)
