"""The candidate zones of a phone number, from the numbering plan as `phonenumbers` maps it.

Where the library pins the exchange to one zone, that zone stands. Where it only
knows the area code, and the same area code has exchanges the library places in
other zones (a split US area code: parts of Indiana, Kentucky, Tennessee, Florida,
the Dakotas...), the number may be in any of them, so all of them are candidates.
Candidates that keep the same clock all year (London, Jersey, Guernsey) count as
one. A number the library cannot place gets the default zone, and counts as
uncertain too. Email-only subscribers without a zone keep the default.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as phone_timezone
from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

from service.addresses import MobileNumber
from service.pacing.window import join_zones
from service.people.zones.names import COMMON_ZONES, known_zones

# Clocks compared every this often over two years decide which zones are the same.
_CLOCK_SAMPLE_STEP = timedelta(hours=6)
_CLOCK_SAMPLE_SPAN = timedelta(days=731)


@dataclass(frozen=True)
class ZoneGuess:
    """A zone to use, and the zones it might really be while nobody has named one."""

    timezone: str
    candidates: tuple[str, ...] = ()  # empty: the zone is known

    @property
    def stored_candidates(self) -> str | None:
        return join_zones(self.candidates)


def guess_for_number(e164: str | None, default: str, now: datetime) -> ZoneGuess:
    """The zone(s) of a subscriber who gave no zone: from their number, else the default."""
    if e164 is None:
        return ZoneGuess(default)
    return _guess(number_zones(e164), default, now)


def guess_for_mobile(mobile: MobileNumber, default: str, now: datetime) -> ZoneGuess:
    """`guess_for_number` for a number already read by `addresses.parse_mobile` (an
    import's rows): the same answer without parsing and typing the number again."""
    return _guess(_zones_of(mobile.number, mobile.kind, mobile.e164), default, now)


def _guess(candidates: tuple[str, ...], default: str, now: datetime) -> ZoneGuess:
    zones = distinct_clocks(candidates, now)
    if not zones:
        return ZoneGuess(default, (default,))  # the default is a guess for a number
    if len(zones) == 1:
        return ZoneGuess(zones[0])
    return ZoneGuess(zones[0], zones)


def number_zones(e164: str) -> tuple[str, ...]:
    """Every zone the numbering plan allows for this number (see the module docstring)."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return ()  # a sender that is no number (a short code, a channel prefix): no zone
    canonical = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return _zones_of(number, phonenumbers.number_type(number), canonical)


def _zones_of(number: phonenumbers.PhoneNumber, kind: int, e164: str) -> tuple[str, ...]:
    """`number_zones` of a number whose type (`phonenumbers.number_type`) is known."""
    zones = [z for z in _library_zones(number, kind) if z in known_zones()]
    if zones:
        area = _area_if_placed_by_it(number, kind, e164)
        if area:
            zones += [z for z in _zones_under(area) if z in known_zones()]
    return tuple(dict.fromkeys(zones))


_COUNTRY_ZONES: dict[int, tuple[str, ...]] = {}


def _library_zones(number: phonenumbers.PhoneNumber, kind: int) -> tuple[str, ...]:
    """`phone_timezone.time_zones_for_number(number)`, without typing the number again.

    That function types the number, then gives an invalid one no zone, a
    geographical one the zones of its longest prefix in the data
    (`time_zones_for_geographical_number`, which we call), and any other the zones
    of its country code alone: the same for every such number of the country, so
    it is asked once per country code.
    """
    if kind == phonenumbers.PhoneNumberType.UNKNOWN:
        return ()
    country = number.country_code or 0
    if phonenumbers.is_number_type_geographical(kind, country):
        return tuple(phone_timezone.time_zones_for_geographical_number(number))
    if country not in _COUNTRY_ZONES:
        _COUNTRY_ZONES[country] = tuple(phone_timezone.time_zones_for_number(number))
    return _COUNTRY_ZONES[country]


def _area_prefix(number: phonenumbers.PhoneNumber) -> str:
    national = phonenumbers.national_significant_number(number)
    length = phonenumbers.length_of_geographical_area_code(number)
    return f"{number.country_code}{national[:length]}" if length else ""


def _area_if_placed_by_it(number: phonenumbers.PhoneNumber, kind: int, e164: str) -> str:
    """The number's area prefix if the library placed it by that area code alone, not
    by its exchange (then the area's other zones are candidates too); else ""."""
    if not phonenumbers.is_number_type_geographical(kind, number.country_code or 0):
        return ""
    digits = e164[1:]
    for length in range(min(TIMEZONE_LONGEST_PREFIX, len(digits)), 0, -1):
        placed_by = digits[:length]
        if placed_by in TIMEZONE_DATA:
            if placed_by not in _prefixes_with_longer_ones():
                # The area starts with `placed_by` when it counts (not shorter), so
                # nothing lies under it either: skip working it out, the costly part
                # (`length_of_geographical_area_code` types the number twice again).
                return ""
            area = _area_prefix(number)
            return area if length <= len(area) else ""
    return ""


@cache
def _prefixes_with_longer_ones() -> frozenset[str]:
    """Prefixes of the zone data under which the data has longer prefixes."""
    return frozenset(prefix[:cut] for prefix in TIMEZONE_DATA for cut in range(1, len(prefix)))


@cache
def _zones_under(area: str) -> tuple[str, ...]:
    """Zones the library gives exchanges within an area code (empty if unsplit)."""
    found = [
        zone
        for prefix, zones in TIMEZONE_DATA.items()
        if len(prefix) > len(area) and prefix.startswith(area)
        for zone in zones
    ]
    return tuple(dict.fromkeys(found))


@lru_cache(maxsize=1024)
def _clock(zone: str, first_year: int) -> tuple[timedelta | None, ...]:
    tz = ZoneInfo(zone)
    start = datetime(first_year, 1, 1, tzinfo=UTC)
    steps = int(_CLOCK_SAMPLE_SPAN / _CLOCK_SAMPLE_STEP)
    return tuple((start + i * _CLOCK_SAMPLE_STEP).astimezone(tz).utcoffset() for i in range(steps))


def distinct_clocks(zones: Iterable[str], now: datetime) -> tuple[str, ...]:
    """The zones, one per clock: zones that show the same time all this year and next
    are one candidate (the commonly known one of them when there is one)."""
    return _distinct_clocks(tuple(zones), now.year)


@lru_cache(maxsize=4096)
def _distinct_clocks(zones: tuple[str, ...], year: int) -> tuple[str, ...]:
    # Cached: comparing two years of a zone's clock costs ~30 µs, and the numbers of
    # an import share a few hundred sets of zones.
    kept: dict[tuple[timedelta | None, ...], str] = {}
    for zone in zones:
        clock = _clock(zone, year)
        if clock not in kept or (zone in COMMON_ZONES and kept[clock] not in COMMON_ZONES):
            kept[clock] = zone
    return tuple(kept.values())
