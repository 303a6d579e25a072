"""Links in messages: one-click unsubscribe (RFC 8058) and the preferences page.

GET on any link changes nothing (PRODUCT.md: link scanners fetch GETs); tokens are
single-purpose and expire.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from service.storage.models import Channel, Message, Subscriber, Suppression
from service.tokens import MAX_AGE_SECONDS, Purpose, make_token
from tests.support.world import Harness, enrol_one_person, make_settings

PHONE = "+12125550142"
EMAIL = "sam@example.com"


@pytest.fixture
def harness(database_url: str) -> Harness:
    """A person with confirmed SMS and email, the welcome sent and the next nudge planned.

    The email came first; the phone was added from its preferences page and
    confirmed with YES, so both are one person (issue 11: proven together).
    """
    harness = Harness(make_settings(database_url))
    enrol_one_person(harness, PHONE, EMAIL)
    harness.tick()
    harness.tick()
    assert scheduled(harness), "a nudge is waiting"
    return harness


def channel_ids(harness: Harness) -> dict[str, int]:
    with harness.runtime.sessions() as session:
        return {kind: cid for cid, kind in session.execute(select(Channel.id, Channel.kind))}


def token(harness: Harness, purpose: Purpose, channel_id: int) -> str:
    return make_token(harness.settings.secret_key.get_secret_value(), purpose, channel_id)


def email_token(harness: Harness, purpose: Purpose) -> str:
    return token(harness, purpose, channel_ids(harness)["email"])


def channel(harness: Harness, kind: str) -> Channel:
    with harness.runtime.sessions() as session:
        found = session.scalar(select(Channel).where(Channel.kind == kind))
        assert found is not None
        return found


def person(harness: Harness) -> Subscriber:
    with harness.runtime.sessions() as session:
        found: Subscriber | None = session.scalar(select(Subscriber))
        assert found is not None
        return found


def scheduled(harness: Harness) -> list[Message]:
    with harness.runtime.sessions() as session:
        return list(
            session.scalars(
                select(Message).where(Message.status == "scheduled", Message.kind != "confirm")
            )
        )


def snapshot(harness: Harness) -> dict[str, Any]:
    """Everything a link could change."""
    sub = person(harness)
    return {
        "channels": {k: (channel(harness, k).status) for k in ("sms", "email")},
        "subscriber": (
            sub.cadence_per_week,
            sub.hour_start,
            sub.hour_end,
            sub.discreet,
            sub.paused_until,
            sub.next_plan_at,
        ),
        "scheduled": [m.id for m in scheduled(harness)],
        "suppressions": suppressions(harness),
    }


def suppressions(harness: Harness) -> int:
    with harness.runtime.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Suppression)) or 0)


def expired_token(harness: Harness, purpose: Purpose, channel_id: int) -> str:
    """A token signed just longer ago than its purpose allows."""
    signed_at = time.time() - MAX_AGE_SECONDS[purpose] - 60
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(time, "time", lambda: signed_at)
        return token(harness, purpose, channel_id)


# --- unsubscribe ---------------------------------------------------------------------------


def test_unsubscribe_get_shows_a_button_and_changes_nothing(harness: Harness) -> None:
    before = snapshot(harness)
    response = harness.client.get(f"/u/{email_token(harness, Purpose.UNSUBSCRIBE)}")
    assert response.status_code == 200
    assert '<form method="post"' in response.text
    assert snapshot(harness) == before


def test_one_click_unsubscribe_post_is_200_without_redirect_or_cookie(harness: Harness) -> None:
    # The SMS channel carries the nudges; unsubscribing it cancels the waiting one.
    sms_token = token(harness, Purpose.UNSUBSCRIBE, channel_ids(harness)["sms"])
    [waiting] = scheduled(harness)
    assert waiting.channel == "sms"
    response = harness.client.post(
        f"/u/{sms_token}",
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert response.status_code == 200
    assert "location" not in response.headers
    assert "set-cookie" not in response.headers
    sms = channel(harness, "sms")
    assert (sms.status, sms.status_reason) == ("stopped", "unsubscribe_link")
    assert channel(harness, "email").status == "active"
    assert waiting.id not in [m.id for m in scheduled(harness)]
    assert suppressions(harness) == 1


def test_email_one_click_unsubscribe_stops_only_email(harness: Harness) -> None:
    response = harness.client.post(
        f"/u/{email_token(harness, Purpose.UNSUBSCRIBE)}",
        data={"List-Unsubscribe": "One-Click"},
        follow_redirects=False,
    )
    assert response.status_code == 200
    assert channel(harness, "email").status == "stopped"
    assert channel(harness, "sms").status == "active"


@pytest.mark.parametrize("purpose", [Purpose.CONFIRM, Purpose.PREFERENCES])
def test_a_token_for_another_purpose_cannot_unsubscribe(harness: Harness, purpose: Purpose) -> None:
    before = snapshot(harness)
    response = harness.client.post(f"/u/{email_token(harness, purpose)}")
    assert response.status_code == 404
    assert snapshot(harness) == before


def test_an_unsubscribe_token_cannot_confirm(database_url: str) -> None:
    harness = Harness(make_settings(database_url))
    harness.client.post("/subscribe", json={"email": EMAIL, "consent": True})
    response = harness.client.post(f"/confirm/{email_token(harness, Purpose.UNSUBSCRIBE)}")
    assert response.status_code == 404
    assert channel(harness, "email").status == "pending"


def test_expired_unsubscribe_token_shows_the_expired_page(harness: Harness) -> None:
    stale = expired_token(harness, Purpose.UNSUBSCRIBE, channel_ids(harness)["email"])
    before = snapshot(harness)
    for response in (harness.client.get(f"/u/{stale}"), harness.client.post(f"/u/{stale}")):
        assert response.status_code == 404
        assert "expired" in response.text
    assert snapshot(harness) == before


# --- preferences ---------------------------------------------------------------------------


def preferences_path(harness: Harness) -> str:
    return f"/preferences/{email_token(harness, Purpose.PREFERENCES)}"


def full_form(**changes: Any) -> dict[str, Any]:
    """What the browser posts for an untouched form (checkboxes: hidden "off" + box)."""
    form: dict[str, Any] = {
        "cadence": "7",
        "hour_start": "8",
        "hour_end": "20",
        "channel_sms": ["off", "on"],
        "channel_email": ["off", "on"],
        "discreet": ["off"],
        "pause_days": "",
    }
    form.update(changes)
    return form


def test_preferences_get_shows_a_labelled_form_and_changes_nothing(harness: Harness) -> None:
    before = snapshot(harness)
    response = harness.client.get(preferences_path(harness))
    assert response.status_code == 200
    page = response.text
    for field in ("cadence", "hour_start", "hour_end", "channel_sms", "channel_email", "discreet"):
        assert f'for="{field}"' in page
        assert f'id="{field}"' in page
    assert 'for="pause_days"' in page
    assert '<option value="7" selected>1 a day</option>' in page
    assert "+121" in page
    assert "0142" not in page, "addresses are masked"
    assert snapshot(harness) == before


def test_saving_cadence_and_hours_replans_the_waiting_nudge(harness: Harness) -> None:
    [waiting] = scheduled(harness)
    response = harness.client.post(
        preferences_path(harness), data=full_form(cadence="3", hour_start="9", hour_end="11")
    )
    assert response.status_code == 200
    assert "Your preferences are saved." in response.text
    sub = person(harness)
    assert (sub.cadence_per_week, sub.hour_start, sub.hour_end) == (3, 9, 11)
    assert waiting.id not in [m.id for m in scheduled(harness)]
    harness.tick()
    [replanned] = scheduled(harness)
    local_hour = replanned.scheduled_for.astimezone(ZoneInfo(sub.timezone)).hour
    assert 9 <= local_hour < 11


@pytest.mark.parametrize(
    "changes",
    [
        {"cadence": "4"},
        {"cadence": "lots"},
        {"hour_start": "7"},
        {"hour_end": "21"},
        {"hour_start": "15", "hour_end": "12"},
        {"pause_days": "90"},
    ],
)
def test_invalid_preferences_are_422_and_change_nothing(
    harness: Harness, changes: dict[str, str]
) -> None:
    before = snapshot(harness)
    response = harness.client.post(preferences_path(harness), data=full_form(**changes))
    assert response.status_code == 422
    assert 'role="alert"' in response.text
    assert snapshot(harness) == before


def test_turning_sms_off_stops_it_and_nudges_move_to_email(harness: Harness) -> None:
    response = harness.client.post(preferences_path(harness), data=full_form(channel_sms=["off"]))
    assert response.status_code == 200
    sms = channel(harness, "sms")
    assert (sms.status, sms.status_reason) == ("stopped", "preferences_page")
    harness.tick()
    assert [m.channel for m in scheduled(harness)] == ["email"]


def test_texts_stopped_by_sms_cannot_be_turned_back_on_from_the_web(harness: Harness) -> None:
    harness.client.post(preferences_path(harness), data=full_form(channel_sms=["off"]))
    response = harness.client.post(preferences_path(harness), data=full_form())
    assert response.status_code == 200
    assert "START" in response.text
    assert channel(harness, "sms").status == "stopped"


def test_email_turned_off_comes_back_from_its_own_link(harness: Harness) -> None:
    harness.client.post(preferences_path(harness), data=full_form(channel_email=["off"]))
    assert channel(harness, "email").status == "stopped"
    assert suppressions(harness) == 1
    harness.client.post(preferences_path(harness), data=full_form())
    assert channel(harness, "email").status == "active"
    assert suppressions(harness) == 0


def test_discreet_mode_and_pause_are_saved(harness: Harness) -> None:
    response = harness.client.post(
        preferences_path(harness), data=full_form(discreet=["off", "on"], pause_days="3")
    )
    assert response.status_code == 200
    sub = person(harness)
    assert sub.discreet is True
    assert sub.paused_until == harness.now + timedelta(days=3)
    assert scheduled(harness) == []
    assert "Paused until" in response.text
    harness.tick(harness.now + timedelta(days=1))
    assert all(m.scheduled_for >= harness.now + timedelta(days=2) for m in scheduled(harness))


def test_a_partial_post_leaves_the_other_fields_alone(harness: Harness) -> None:
    response = harness.client.post(preferences_path(harness), data={"cadence": "14"})
    assert response.status_code == 200
    assert person(harness).cadence_per_week == 14
    assert channel(harness, "sms").status == "active"
    assert channel(harness, "email").status == "active"


@pytest.mark.parametrize("purpose", [Purpose.CONFIRM, Purpose.UNSUBSCRIBE])
def test_preferences_refuse_tokens_for_other_purposes(harness: Harness, purpose: Purpose) -> None:
    before = snapshot(harness)
    path = f"/preferences/{email_token(harness, purpose)}"
    assert harness.client.get(path).status_code == 404
    assert harness.client.post(path, data=full_form(cadence="3")).status_code == 404
    assert snapshot(harness) == before


def test_expired_preferences_token_is_404(harness: Harness) -> None:
    stale = expired_token(harness, Purpose.PREFERENCES, channel_ids(harness)["email"])
    assert harness.client.get(f"/preferences/{stale}").status_code == 404
