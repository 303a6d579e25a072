"""Safety lines per country and kind of danger: the file, the fallback, the country."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.messages.safety_lines import (
    LINE_KINDS,
    SafetyLines,
    SafetyLinesError,
    country_of,
    read_lines_file,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy/safety-lines.example.toml"
FALLBACK = "If you need help now, call a local crisis line."


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lines.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("phone", "timezone", "country"),
    [
        ("+12125550142", None, "US"),  # New York
        ("+14165550142", None, "CA"),  # Toronto shares +1 with the US
        ("+447400123456", None, "GB"),
        ("+353851234567", None, "IE"),
        ("+61412345678", None, "AU"),
        ("+447400123456", "America/New_York", "GB"),  # the number wins over the zone
        (None, "Europe/Dublin", "IE"),  # email-only: the zone's country
        (None, "Australia/Sydney", "AU"),
        (None, "America/Toronto", "CA"),
        (None, "US/Eastern", "US"),  # an old alias of America/New_York
        (None, "UTC", None),  # no country
        (None, None, None),
        ("not a number", None, None),
    ],
)
def test_country_comes_from_the_number_else_the_time_zone(
    phone: str | None, timezone: str | None, country: str | None
) -> None:
    assert country_of(phone, timezone) == country


def test_the_example_file_names_both_lines_for_the_five_countries() -> None:
    lines = read_lines_file(EXAMPLE)
    assert set(lines) == {"US", "CA", "GB", "IE", "AU"}
    for country, kinds in lines.items():
        assert set(kinds) == set(LINE_KINDS), country
    assert "988" in lines["US"]["crisis"]
    assert "1-800-799-7233" in lines["US"]["violence"]
    assert "116 123" in lines["GB"]["crisis"]
    assert "13 11 14" in lines["AU"]["crisis"]


def test_the_example_file_names_no_emergency_number() -> None:
    for country, kinds in read_lines_file(EXAMPLE).items():
        for line in kinds.values():
            assert re.search(r"(?<![\d -])(?:911|999|000|112)(?![\d -])", line) is None, country


def test_lines_follow_the_country_and_fall_back_where_the_file_is_silent(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[GB]\ncrisis = "Samaritans: 116 123."\nviolence = "DA helpline."\n'
        '[IE]\ncrisis = "Samaritans IE."\n',
    )
    lines = SafetyLines.from_file(path, FALLBACK)
    assert lines.lines("GB", ["crisis"]) == ["Samaritans: 116 123."]
    assert lines.lines("GB", ["violence"]) == ["DA helpline."]
    assert lines.lines("GB", ["violence", "crisis"]) == ["Samaritans: 116 123.", "DA helpline."]
    assert lines.lines("IE", LINE_KINDS) == ["Samaritans IE.", FALLBACK], "a missing key"
    assert lines.lines("FR", LINE_KINDS) == [FALLBACK], "the fallback once, not twice"
    assert lines.lines(None, ["crisis"]) == [FALLBACK]
    assert SafetyLines.from_file(path, None).lines("FR", LINE_KINDS) == []


def test_without_a_file_every_country_gets_the_fallback() -> None:
    assert SafetyLines.from_file(None, FALLBACK).lines("US", ["violence"]) == [FALLBACK]
    assert SafetyLines.from_file(None, None).lines("US", LINE_KINDS) == []


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ('[usa]\ncrisis = "x"\n', "ISO country code"),
        ('[US]\nsuicide = "x"\n', "only crisis and violence"),
        ("[US]\ncrisis = 988\n", "non-empty string"),
        ('[US]\ncrisis = "  "\n', "non-empty string"),
        (f'[US]\ncrisis = "{"x" * 161}"\n', "160 characters"),
        ('US = "988"\n', "expected a table"),
        ("[US\ncrisis =", "not valid TOML"),
    ],
)
def test_a_bad_file_is_refused_naming_what_is_wrong(
    tmp_path: Path, text: str, complaint: str
) -> None:
    with pytest.raises(SafetyLinesError, match=complaint):
        read_lines_file(write(tmp_path, text))


def test_an_unusable_file_leaves_the_fallback_rather_than_failing_replies(tmp_path: Path) -> None:
    broken = SafetyLines.from_file(write(tmp_path, "[US\n"), FALLBACK)
    assert broken.lines("US", LINE_KINDS) == [FALLBACK]
    missing = SafetyLines.from_file(tmp_path / "missing.toml", FALLBACK)
    assert missing.lines("GB", ["crisis"]) == [FALLBACK]
