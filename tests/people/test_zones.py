"""Which zones a number may be in, and which zone a place names (all offline data)."""

from __future__ import annotations

from datetime import UTC, datetime

import phonenumbers
import pytest
from phonenumbers import timezone as phone_timezone
from phonenumbers.tzdata import TIMEZONE_DATA

from service.people.zones.names import check_zone_name, zone_label
from service.people.zones.numbers import ZoneGuess, distinct_clocks, guess_for_number, number_zones
from service.people.zones.places import zone_for_place

NOW = datetime(2027, 1, 10, tzinfo=UTC)
DEFAULT = "America/New_York"
# Area codes whose exchanges phonenumbers places in more than one zone: Indiana (812,
# 219, 574), Florida's panhandle (850), Kentucky (270, 606), Michigan's Upper
# Peninsula (906), Tennessee (423), Nebraska (308), Kansas (620, 785), Oregon (541),
# Arizona's Navajo Nation (928). Each is checked against the library's own data below.
SPLIT_AREA_CODES = (
    "812",
    "219",
    "574",
    "850",
    "270",
    "606",
    "906",
    "423",
    "308",
    "620",
    "785",
    "541",
    "928",
)


def split_zones_of(area: str) -> tuple[set[str], set[str]]:
    """(the zone the library gives the area code, the zones it gives some exchanges)."""
    own = set(TIMEZONE_DATA[f"1{area}"])
    finer = {
        z
        for prefix, zones in TIMEZONE_DATA.items()
        if prefix.startswith(f"1{area}") and len(prefix) > 4
        for z in zones
    }
    return own, finer - own


def number_in(area: str, *, listed: bool) -> str:
    """A valid number of the area code in an exchange the library lists, or does not."""
    for exchange in range(200, 1000):
        prefix = f"1{area}{exchange}"
        number = phonenumbers.parse(f"+{prefix}5555", None)
        if not phonenumbers.is_valid_number(number):
            continue
        if (prefix in TIMEZONE_DATA) == listed:
            return f"+{prefix}5555"
    raise AssertionError(f"no {'listed' if listed else 'unlisted'} exchange in {area}")


@pytest.mark.parametrize("area", SPLIT_AREA_CODES)
def test_a_split_area_code_really_is_split_in_the_library_data(area: str) -> None:
    _, others = split_zones_of(area)
    assert others, f"{area} is not split in phonenumbers' data"


@pytest.mark.parametrize("area", SPLIT_AREA_CODES)
def test_a_number_placed_only_by_a_split_area_code_fits_every_zone_of_it(area: str) -> None:
    own, others = split_zones_of(area)
    number = number_in(area, listed=False)
    assert set(phone_timezone.time_zones_for_number(phonenumbers.parse(number))) == own
    assert set(number_zones(number)) == own | others
    guess = guess_for_number(number, DEFAULT, NOW)
    assert len(guess.candidates) >= 2
    assert guess.timezone in guess.candidates


@pytest.mark.parametrize("area", SPLIT_AREA_CODES)
def test_a_number_whose_exchange_the_library_pins_keeps_that_zone(area: str) -> None:
    number = number_in(area, listed=True)
    pinned = phone_timezone.time_zones_for_number(phonenumbers.parse(number))
    assert number_zones(number) == tuple(pinned)


def test_a_number_of_an_unsplit_area_code_is_certain() -> None:
    assert guess_for_number("+12125550142", DEFAULT, NOW) == ZoneGuess("America/New_York")
    assert guess_for_number("+14165550142", DEFAULT, NOW) == ZoneGuess("America/Toronto")
    assert guess_for_number("+13065550142", DEFAULT, NOW) == ZoneGuess("America/Regina")


def test_an_australian_mobile_fits_every_australian_zone_the_library_names() -> None:
    guess = guess_for_number("+61412345678", DEFAULT, NOW)
    assert {"Australia/Sydney", "Australia/Perth", "Australia/Lord_Howe", "Australia/Eucla"} <= set(
        guess.candidates
    )
    assert "America/New_York" not in guess.candidates


def test_uk_and_irish_mobiles_are_one_clock_and_need_no_question() -> None:
    # The library gives London, Jersey, Guernsey and the Isle of Man: one clock.
    assert guess_for_number("+447911123456", DEFAULT, NOW) == ZoneGuess("Europe/London")
    irish = guess_for_number("+353851234567", DEFAULT, NOW)
    assert irish.candidates == ()
    assert distinct_clocks([irish.timezone, "Europe/Dublin"], NOW) == (irish.timezone,)


def test_zones_with_different_clocks_stay_apart() -> None:
    assert (
        len(distinct_clocks(["Australia/Sydney", "Australia/Brisbane", "Australia/Melbourne"], NOW))
        == 2
    )
    assert distinct_clocks(["America/Phoenix", "America/Denver"], NOW) == (
        "America/Phoenix",
        "America/Denver",
    )


def test_email_only_keeps_the_default_and_an_unplaceable_number_is_a_guess() -> None:
    assert guess_for_number(None, "Europe/London", NOW) == ZoneGuess("Europe/London")
    satellite = guess_for_number("+881612345678", "Europe/London", NOW)
    assert satellite == ZoneGuess("Europe/London", ("Europe/London",))
    assert satellite.stored_candidates == "Europe/London"


@pytest.mark.parametrize(
    ("place", "zone"),
    [
        ("Chicago", "America/Chicago"),
        ("los angeles", "America/Los_Angeles"),
        ("London", "Europe/London"),
        ("Sydney", "Australia/Sydney"),
        ("60601", "America/Chicago"),
        ("90210", "America/Los_Angeles"),
        ("85001", "America/Phoenix"),
        ("99501-1234", "America/Anchorage"),
        ("America/Denver", "America/Denver"),
        ("america los angeles", "America/Los_Angeles"),
        ("Australia/Lord_Howe", "Australia/Lord_Howe"),
        ("Portland Maine", "America/New_York"),
        ("portland, OR", "America/Los_Angeles"),
        ("London, Ontario", "America/Toronto"),
        ("Sydney NSW", "Australia/Sydney"),
        ("St. John's", "America/St_Johns"),
        ("New York", "America/New_York"),
        ("Eastern", "America/New_York"),
        ("pacific time", "America/Los_Angeles"),
        ("Dublin", "Europe/Dublin"),
        ("I live in Denver", "America/Denver"),
        ("Perth", "Australia/Perth"),
        ("Darwin", "Australia/Darwin"),
        ("Regina", "America/Regina"),
    ],
)
def test_a_place_names_its_zone(place: str, zone: str) -> None:
    assert zone_for_place(place) == zone


@pytest.mark.parametrize("place", ["", "   ", "Mars", "asdfgh", "00000", "Texas", "Etc/GMT+5"])
def test_a_place_we_cannot_read_names_no_zone(place: str) -> None:
    assert zone_for_place(place) is None


def test_zone_names_are_checked_against_the_iana_database() -> None:
    assert check_zone_name("Europe/Berlin") == "Europe/Berlin"
    assert check_zone_name(" america/new_york ") == "America/New_York"
    assert check_zone_name("Mars/Olympus_Mons") is None
    assert check_zone_name("../../etc/passwd") is None


def test_a_zone_is_named_by_its_city_and_its_iana_name() -> None:
    assert zone_label("America/Los_Angeles") == "Los Angeles time (America/Los_Angeles)"
    assert zone_label("UTC") == "UTC"
