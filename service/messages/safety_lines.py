"""Safety lines per country and kind of danger (PRODUCT.md "Safety", INTERFACE.md §1).

The operator's `STEADY_SAFETY_LINES_FILE` is TOML: one table per ISO country code,
each with a `crisis` line (suicide, self-harm, hopelessness) and a `violence` line
(partner violence, stalking, danger). A country without a table, or a missing key,
falls back to `STEADY_SAFETY_LINE`. Steady names no emergency number of its own:
a number that works in one country (911) is wrong in another (999, 000), so only
the operator's file names one, country by country.

A person's country comes from their phone number (its numbering plan says where
it belongs), else from their time zone, read from the IANA `zone.tab` that the
`tzdata` package ships (a zone such as Europe/London belongs to one country).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

import phonenumbers
import structlog

log = structlog.get_logger(__name__)

LineKind = Literal["crisis", "violence"]
LINE_KINDS: tuple[LineKind, ...] = ("crisis", "violence")  # the order lines are listed in
COUNTRY_CODE = re.compile(r"[A-Z]{2}")
MAX_LINE_CHARS = 160  # one SMS segment: a line is a name and a number, not a paragraph


class SafetyLinesError(ValueError):
    """The safety lines file cannot be used as it is."""


@dataclass(frozen=True)
class SafetyLines:
    """Which safety lines a person gets, by country and kind of danger."""

    by_country: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    fallback: str | None = None

    @classmethod
    def from_file(cls, path: Path | None, fallback: str | None) -> SafetyLines:
        """Lines from the operator's file; an unusable file leaves only the fallback.

        Failing the inbound webhook over a broken file would drop every reply,
        STOPs included; `steady config check` reports the error instead.
        """
        if path is None:
            return cls({}, fallback or None)
        try:
            return cls(read_lines_file(path), fallback or None)
        except SafetyLinesError as exc:
            log.error("safety_lines_file_unusable", path=str(path), error=str(exc))
            return cls({}, fallback or None)

    def line(self, country: str | None, kind: LineKind) -> str | None:
        """The line of one kind for a country, else the fallback (None when neither)."""
        lines = self.by_country.get(country or "", {})
        return lines.get(kind) or self.fallback

    def lines(self, country: str | None, kinds: Iterable[str] = LINE_KINDS) -> list[str]:
        """The lines for these kinds, crisis first, each once (a fallback is not repeated)."""
        wanted = set(kinds)
        found: list[str] = []
        for kind in LINE_KINDS:
            if kind in wanted:
                text = self.line(country, kind)
                if text and text not in found:
                    found.append(text)
        return found


def read_lines_file(path: Path) -> dict[str, dict[str, str]]:
    """Parse and check the TOML file; raises SafetyLinesError naming what is wrong."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SafetyLinesError(f"cannot read {path}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SafetyLinesError(f"{path} is not valid TOML: {exc}") from exc
    table: dict[str, dict[str, str]] = {}
    for country, lines in raw.items():
        if not COUNTRY_CODE.fullmatch(country):
            raise SafetyLinesError(f"[{country}]: not an ISO country code such as [US]")
        if not isinstance(lines, dict):
            raise SafetyLinesError(f"{country}: expected a table with crisis and violence")
        checked: dict[str, str] = {}
        for kind, text in lines.items():
            if kind not in LINE_KINDS:
                raise SafetyLinesError(f"{country}.{kind}: only crisis and violence are known")
            if not isinstance(text, str) or not text.strip():
                raise SafetyLinesError(f"{country}.{kind}: expected a non-empty string")
            if len(text.strip()) > MAX_LINE_CHARS:
                raise SafetyLinesError(f"{country}.{kind}: longer than {MAX_LINE_CHARS} characters")
            checked[kind] = " ".join(text.split())
        table[country] = checked
    return table


def country_of(phone: str | None, timezone: str | None) -> str | None:
    """ISO code of the person's country: the phone's numbering plan, else their zone's."""
    if phone:
        try:
            region = phonenumbers.region_code_for_number(phonenumbers.parse(phone, None))
        except phonenumbers.NumberParseException:
            region = None
        if region and region != "ZZ":
            return str(region)
    if timezone:
        return _zone_countries().get(timezone)
    return None


@cache
def _zone_countries() -> dict[str, str]:
    """IANA zone -> ISO country, from tzdata's zone.tab, links (US/Eastern) included."""
    zoneinfo = resources.files("tzdata").joinpath("zoneinfo")
    countries: dict[str, str] = {}
    for line in zoneinfo.joinpath("zone.tab").read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        code, _coordinates, zone, *_ = line.split("\t")
        countries[zone] = code
    # tzdata.zi holds the links ("L America/New_York US/Eastern"): an alias is where
    # its target is. Zones without a country (UTC, Etc/GMT+5) stay unknown.
    for line in zoneinfo.joinpath("tzdata.zi").read_text(encoding="utf-8").splitlines():
        if line.startswith("L "):
            _, target, alias = line.split()
            if target in countries:
                countries.setdefault(alias, countries[target])
    return countries
