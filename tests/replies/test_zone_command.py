"""ZONE, and the one question about the zone when a number leaves it uncertain."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from service.pacing.window import split_zones
from service.people.zones.numbers import guess_for_number
from service.storage.models import Message, Subscriber
from tests.support.world import Harness, make_settings

NOON_NEW_YORK = datetime(2027, 3, 1, 17, 0, tzinfo=UTC)  # 12:00 in New York, a Monday
SPLIT = "+18122005555"  # Indiana 812, an exchange placed by the area code only: Eastern or Central
CERTAIN = "+12125550142"  # Manhattan: Eastern only
AUSTRALIAN = "+61412345678"
ASK = "Reply ZONE and your city or ZIP"


def twiml_text(twiml: str) -> str | None:
    messages = ET.fromstring(twiml).findall("Message")  # noqa: S314 - our own TwiML
    return messages[0].text if messages else None


def say(harness: Harness, phone: str, body: str) -> str:
    response = harness.text_in(phone, body)
    assert response.status_code == 200
    text = twiml_text(response.text)
    assert text is not None
    return text


def person(harness: Harness) -> Subscriber:
    with harness.runtime.sessions() as session:
        found = session.scalars(select(Subscriber)).one()
        session.expunge(found)
        return found


def joined(database_url: str, phone: str, **settings: str) -> tuple[Harness, str, str]:
    """JOIN then YES from ``phone``: the harness and both replies."""
    harness = Harness(make_settings(database_url, **settings))
    harness.now = NOON_NEW_YORK
    opt_in = say(harness, phone, "JOIN")
    welcome = say(harness, phone, "YES")
    return harness, opt_in, welcome


def test_join_from_a_split_area_code_keeps_both_zones_and_asks_once(database_url: str) -> None:
    harness, opt_in, welcome = joined(database_url, SPLIT)
    sub = person(harness)
    assert split_zones(sub.timezone_candidates) == ("America/New_York", "America/Chicago")
    assert ASK not in opt_in, "the question comes once, with the welcome"
    assert ASK in welcome
    # A second YES, or anything later, does not ask again.
    assert ASK not in say(harness, SPLIT, "YES")
    assert ASK not in say(harness, SPLIT, "HELP")


def test_join_from_a_number_in_one_zone_does_not_ask(database_url: str) -> None:
    harness, _, welcome = joined(database_url, CERTAIN)
    assert ASK not in welcome
    sub = person(harness)
    assert (sub.timezone, sub.timezone_candidates) == ("America/New_York", None)


def test_a_number_the_default_zone_was_guessed_for_is_marked_uncertain() -> None:
    # The default zone stands in for a number the numbering plan cannot place; the
    # guess keeps it as a candidate, so the welcome asks (as for split area codes).
    # (Such numbers can no longer JOIN by text: issue 11 refuses non-allowed ranges.)
    guess = guess_for_number("+881612345678", "Europe/London", NOON_NEW_YORK)
    assert guess.timezone == "Europe/London"
    assert split_zones(guess.stored_candidates) == ("Europe/London",)


def test_zones_sharing_no_hours_are_told_nothing_comes_until_zone(database_url: str) -> None:
    harness = Harness(make_settings(database_url))
    harness.now = NOON_NEW_YORK
    say(harness, SPLIT, "JOIN")
    with harness.runtime.sessions.begin() as session:
        sub = session.scalars(select(Subscriber)).one()
        sub.timezone_candidates = "Pacific/Honolulu Asia/Kolkata Europe/London"
    welcome = say(harness, SPLIT, "YES")
    assert "start once you reply ZONE" in welcome
    harness.tick(NOON_NEW_YORK + timedelta(minutes=1))
    assert harness.sms.sent == [], "no nudge while no hour fits every zone"
    reply = say(harness, SPLIT, "ZONE Chicago")
    assert "America/Chicago" in reply
    harness.tick(NOON_NEW_YORK + timedelta(minutes=2))
    assert len(harness.sms.sent) == 1, "naming the zone plans the welcome"


@pytest.mark.parametrize(
    ("text", "zone"),
    [
        ("ZONE Chicago", "America/Chicago"),
        ("zone los angeles", "America/Los_Angeles"),
        ("ZONE London", "Europe/London"),
        ("ZONE Sydney", "Australia/Sydney"),
        ("ZONE 60601", "America/Chicago"),
        ("ZONE America/Denver", "America/Denver"),
        ("Zone: Pacific", "America/Los_Angeles"),
        ("time zone 99501", "America/Anchorage"),
    ],
)
def test_zone_sets_the_zone_and_names_it_with_the_hours(
    database_url: str, text: str, zone: str
) -> None:
    harness, _, _ = joined(database_url, SPLIT)
    reply = say(harness, SPLIT, text)
    assert zone in reply
    assert "between 8am and 8pm your time" in reply
    sub = person(harness)
    assert (sub.timezone, sub.timezone_candidates) == (zone, None)


def test_zone_reply_names_the_persons_own_hours(database_url: str) -> None:
    harness, _, _ = joined(database_url, SPLIT)
    with harness.runtime.sessions.begin() as session:
        session.scalars(select(Subscriber)).one().hour_start = 9
    assert "between 9am and 8pm" in say(harness, SPLIT, "ZONE Chicago")


@pytest.mark.parametrize("text", ["ZONE", "ZONE Xyzzyville", "zone 00000", "ZONE Texas"])
def test_zone_with_a_place_we_cannot_read_says_how_to_write_it(
    database_url: str, text: str
) -> None:
    harness, _, _ = joined(database_url, SPLIT)
    reply = say(harness, SPLIT, text)
    assert "ZONE Chicago" in reply
    assert "60601" in reply
    assert split_zones(person(harness).timezone_candidates) == (
        "America/New_York",
        "America/Chicago",
    )


def test_discreet_zone_replies_say_nothing_about_the_topic(database_url: str) -> None:
    harness, _, _ = joined(database_url, SPLIT)
    with harness.runtime.sessions.begin() as session:
        session.scalars(select(Subscriber)).one().discreet = True
    for text in ("ZONE Chicago", "ZONE Xyzzyville"):
        reply = say(harness, SPLIT, text)
        assert not reply.startswith("Steady")
        for word in ("separation", "partner", "ex", "marriage"):
            assert f" {word} " not in f" {reply.lower()} "


def test_zone_replans_the_next_nudge_in_the_named_zones_hours(database_url: str) -> None:
    # Australia among the operator's SMS countries (STEADY_SMS_COUNTRIES, issue 11).
    harness, _, _ = joined(database_url, AUSTRALIAN, STEADY_SMS_COUNTRIES="US,CA,AU")
    assert len(split_zones(person(harness).timezone_candidates)) >= 6
    # 12:00 in New York is 04:00 in Sydney: the welcome waits for the shared window.
    harness.tick(NOON_NEW_YORK + timedelta(minutes=1))
    with harness.runtime.sessions() as session:
        before = session.scalars(select(Message).where(Message.status == "scheduled")).one()
    say(harness, AUSTRALIAN, "ZONE Perth")
    harness.tick(NOON_NEW_YORK + timedelta(minutes=2))
    with harness.runtime.sessions() as session:
        statuses = dict(
            session.execute(
                select(Message.id, Message.status).where(Message.kind == "welcome")
            ).all()
        )
        after = session.scalars(select(Message).where(Message.status == "scheduled")).one()
    assert statuses[before.id] == "cancelled"
    perth = after.scheduled_for.astimezone(ZoneInfo("Australia/Perth"))
    assert (perth.hour, perth.minute) == (8, 0)
