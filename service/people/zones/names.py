"""Zone names: the IANA names this machine knows, the common ones, and how they read.

``ZONE America/Los_Angeles`` may be typed in any case with spaces for underscores
(``check_zone_name``); a zone is named to a person after its city (``zone_label``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from zoneinfo import available_timezones

from unidecode import unidecode

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

_NOT_WORD = re.compile(r"[^a-z0-9]+")


def plain_words(text: str) -> str:
    """Lower case, ASCII, no punctuation: "St. John's" -> "st johns"."""
    ascii_text = (text if text.isascii() else unidecode(text)).casefold()
    return " ".join(_NOT_WORD.sub(" ", ascii_text.replace("'", "").replace("`", "")).split())


@cache
def known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


@cache
def iana_by_words() -> Mapping[str, str]:
    """ "america los angeles" -> "America/Los_Angeles"; names two zones share are left out."""
    seen: dict[str, set[str]] = {}
    for zone in known_zones():
        if "/" in zone and not zone.startswith(("Etc/", "SystemV/")):
            seen.setdefault(plain_words(zone), set()).add(zone)
    return {words: zones.pop() for words, zones in seen.items() if len(zones) == 1}


def check_zone_name(value: str) -> str | None:
    """An IANA name as typed (any case, spaces for underscores), or None if unknown."""
    cleaned = value.strip()
    if cleaned in known_zones():
        return cleaned
    return iana_by_words().get(plain_words(cleaned))


def zone_city(zone: str) -> str:
    """The place a zone is named after: "America/Los_Angeles" -> "Los Angeles"."""
    return zone.rsplit("/", 1)[-1].replace("_", " ")


def zone_label(zone: str) -> str:
    """How a zone is named to a person: "Chicago time (America/Chicago)"."""
    return f"{zone_city(zone)} time ({zone})" if "/" in zone else zone
