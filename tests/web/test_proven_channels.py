"""No cross-channel takeover (issue 11): whoever holds an email link submitted next to
someone's phone number can neither see nor change that phone's texts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from service.storage.models import Channel, Subscriber
from service.tokens import Purpose, make_token
from tests.support.world import Harness, make_settings

PHONE = "+12125550142"
MASKED_PHONE_TAIL = PHONE[-2:]
EMAIL = "partner@example.com"


def link(harness: Harness, purpose: Purpose, kind: str) -> str:
    with harness.runtime.sessions() as session:
        channel_id = session.scalar(select(Channel.id).where(Channel.kind == kind))
    assert channel_id is not None
    secret = harness.settings.secret_key.get_secret_value()
    prefix = {Purpose.CONFIRM: "confirm", Purpose.PREFERENCES: "preferences"}[purpose]
    return f"/{prefix}/{make_token(secret, purpose, channel_id)}"


def phone_state(harness: Harness) -> dict[str, Any]:
    with harness.runtime.sessions() as session:
        channel = session.scalars(select(Channel).where(Channel.kind == "sms")).one()
        person = session.get(Subscriber, channel.subscriber_id)
        assert person is not None
        return {
            "status": channel.status,
            "subscriber_id": channel.subscriber_id,
            "cadence": person.cadence_per_week,
            "paused_until": person.paused_until,
            "discreet": person.discreet,
        }


def takeover_attempt(harness: Harness) -> Any:
    """Everything the email's page could try against the phone."""
    return harness.client.post(
        link(harness, Purpose.PREFERENCES, "email"),
        data={
            "channel_sms": "off",
            "cadence": "21",
            "pause_days": "30",
            "discreet": "on",
        },
    )


def both_signed_up_together(database_url: str) -> Harness:
    harness = Harness(make_settings(database_url))
    response = harness.client.post(
        "/subscribe", json={"phone": PHONE, "email": EMAIL, "consent": True}
    )
    assert response.status_code == 202
    harness.tick()
    assert harness.client.post(link(harness, Purpose.CONFIRM, "email")).status_code == 200
    return harness


def test_the_email_link_never_shows_the_phone_before_or_after_its_yes(database_url: str) -> None:
    harness = both_signed_up_together(database_url)
    before = harness.client.get(link(harness, Purpose.PREFERENCES, "email")).text
    harness.text_in(PHONE, "YES")
    after = harness.client.get(link(harness, Purpose.PREFERENCES, "email")).text
    for page in (before, after):
        assert "Text messages" not in page
        assert f"{MASKED_PHONE_TAIL}</span>" not in page
        assert 'name="channel_sms"' not in page


def test_the_email_link_cannot_stop_or_change_the_phone(database_url: str) -> None:
    harness = both_signed_up_together(database_url)
    harness.text_in(PHONE, "YES")
    harness.tick()
    untouched = phone_state(harness)
    assert untouched["status"] == "active"
    assert takeover_attempt(harness).status_code == 200
    assert phone_state(harness) == untouched


def test_the_email_link_cannot_change_a_pending_phone_either(database_url: str) -> None:
    harness = both_signed_up_together(database_url)
    untouched = phone_state(harness)
    takeover_attempt(harness)
    assert phone_state(harness) == untouched
    harness.text_in(PHONE, "YES")
    assert phone_state(harness)["status"] == "active"


def test_a_phone_added_from_the_email_page_joins_once_it_says_yes(database_url: str) -> None:
    harness = Harness(make_settings(database_url))
    harness.client.post("/subscribe", json={"email": EMAIL, "consent": True})
    harness.tick()
    harness.client.post(link(harness, Purpose.CONFIRM, "email"))
    page = link(harness, Purpose.PREFERENCES, "email")
    assert 'name="new_phone"' in harness.client.get(page).text
    added = harness.client.post(page, data={"new_phone": "(212) 555-0142"})
    assert added.status_code == 200
    harness.tick()
    assert [m.to for m in harness.sms.sent] == [PHONE]
    assert "Text messages" not in harness.client.get(page).text, "not proven yet"

    harness.text_in(PHONE, "YES")
    shown = harness.client.get(page).text
    assert "Text messages" in shown
    assert 'name="channel_sms"' in shown
    assert 'name="new_phone"' not in shown, "one phone per person"
    harness.client.post(page, data={"channel_sms": "off"})
    assert phone_state(harness)["status"] == "stopped", "proven together: this page may stop it"


def test_adding_a_pumping_number_from_the_page_is_refused(database_url: str) -> None:
    harness = Harness(make_settings(database_url))
    harness.client.post("/subscribe", json={"email": EMAIL, "consent": True})
    harness.tick()
    harness.client.post(link(harness, Purpose.CONFIRM, "email"))
    page = link(harness, Purpose.PREFERENCES, "email")
    refused = harness.client.post(page, data={"new_phone": "+19002345678"})
    assert refused.status_code == 422
    harness.tick()
    assert harness.sms.sent == []
