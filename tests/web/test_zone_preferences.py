"""The time zone on the signup form and the preferences page."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from service.pacing.window import split_zones
from service.storage.models import Channel, Message, Subscriber
from service.tokens import Purpose, make_token
from tests.support.world import Harness, make_settings

NOON_NEW_YORK = datetime(2027, 3, 1, 17, 0, tzinfo=UTC)
SPLIT = "+18122005555"  # Indiana 812, placed by the area code only: Eastern or Central


def signed_up(database_url: str, **form: object) -> Harness:
    harness = Harness(make_settings(database_url))
    harness.now = NOON_NEW_YORK
    response = harness.client.post("/subscribe", json={"consent": True, **form})
    assert response.status_code == 202
    return harness


def person(harness: Harness) -> Subscriber:
    with harness.runtime.sessions() as session:
        found = session.scalars(select(Subscriber)).one()
        session.expunge(found)
        return found


def preferences_path(harness: Harness) -> str:
    with harness.runtime.sessions.begin() as session:
        channel = session.scalars(select(Channel)).one()
        # The page shows what the link's channel has proven: confirm it first.
        channel.status, channel.confirmed_at = "active", NOON_NEW_YORK
        channel_id = channel.id
    token = make_token(
        harness.settings.secret_key.get_secret_value(), Purpose.PREFERENCES, channel_id
    )
    return f"/preferences/{token}"


def test_web_signup_without_a_zone_keeps_every_zone_the_number_fits(database_url: str) -> None:
    sub = person(signed_up(database_url, phone=SPLIT))
    assert sub.timezone == "America/New_York"
    assert split_zones(sub.timezone_candidates) == ("America/New_York", "America/Chicago")


def test_web_signup_with_a_zone_takes_it_as_named(database_url: str) -> None:
    sub = person(signed_up(database_url, phone=SPLIT, timezone="America/Chicago"))
    assert (sub.timezone, sub.timezone_candidates) == ("America/Chicago", None)


def test_email_only_signup_without_a_zone_gets_the_default(database_url: str) -> None:
    sub = person(signed_up(database_url, email="sam@example.com"))
    assert (sub.timezone, sub.timezone_candidates) == ("America/New_York", None)


def test_preferences_page_says_the_zone_is_not_chosen_and_lists_the_candidates(
    database_url: str,
) -> None:
    harness = signed_up(database_url, phone=SPLIT)
    page = harness.client.get(preferences_path(harness)).text
    assert 'for="timezone"' in page
    assert 'id="timezone"' in page
    assert 'for="timezone_other"' in page
    assert "Not chosen yet" in page
    assert "any of these zones: New York, Chicago." in page
    assert '<option value="" selected>Choose your time zone</option>' in page


def test_preferences_page_shows_a_named_zone_selected(database_url: str) -> None:
    harness = signed_up(database_url, phone=SPLIT, timezone="Europe/Berlin")
    page = harness.client.get(preferences_path(harness)).text
    assert '<option value="Europe/Berlin" selected>' in page
    assert "Not chosen yet" not in page
    assert len(re.findall(r"<option value=\"[A-Z][^\"]*\" selected>", page)) == 1


@pytest.mark.parametrize(
    ("form", "zone"),
    [
        ({"timezone": "America/Chicago"}, "America/Chicago"),
        ({"timezone": "America/Chicago", "timezone_other": "Europe/Berlin"}, "Europe/Berlin"),
        ({"timezone": "", "timezone_other": "asia/tokyo"}, "Asia/Tokyo"),
    ],
)
def test_choosing_a_zone_on_the_page_names_it_and_replans(
    database_url: str, form: dict[str, str], zone: str
) -> None:
    harness = signed_up(database_url, phone=SPLIT)
    path = preferences_path(harness)
    with harness.runtime.sessions.begin() as session:
        session.scalars(select(Subscriber)).one().next_plan_at = None
    response = harness.client.post(path, data=form)
    assert response.status_code == 200
    sub = person(harness)
    assert (sub.timezone, sub.timezone_candidates) == (zone, None)
    assert sub.next_plan_at == NOON_NEW_YORK, "a new zone plans the next nudge again"
    harness.tick()
    with harness.runtime.sessions() as session:
        [nudge] = session.scalars(select(Message).where(Message.kind == "welcome")).all()
    assert 8 <= nudge.scheduled_for.astimezone(ZoneInfo(zone)).hour < 20


@pytest.mark.parametrize(
    "typed", ["Mars/Olympus", "America/Atlantis", "<script>", "../../etc/passwd", "x" * 300]
)
def test_an_unknown_zone_is_422_and_changes_nothing(database_url: str, typed: str) -> None:
    harness = signed_up(database_url, phone=SPLIT)
    path = preferences_path(harness)
    before = person(harness)
    for form in ({"timezone_other": typed}, {"timezone": typed}):
        response = harness.client.post(path, data=form)
        assert response.status_code == 422
        assert 'role="alert"' in response.text
        assert "Time zone" in response.text
    after = person(harness)
    assert (after.timezone, after.timezone_candidates) == (
        before.timezone,
        before.timezone_candidates,
    )


def test_leaving_the_zone_unchosen_keeps_the_candidates(database_url: str) -> None:
    harness = signed_up(database_url, phone=SPLIT)
    response = harness.client.post(preferences_path(harness), data={"timezone": "", "cadence": "3"})
    assert response.status_code == 200
    sub = person(harness)
    assert sub.cadence_per_week == 3
    assert split_zones(sub.timezone_candidates) == ("America/New_York", "America/Chicago")
