"""Signup, double opt-in and the first nudges, through the HTTP routes and the runtime."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from service.storage.models import Channel, Message
from tests.support.world import Harness, make_settings

NOON_NEW_YORK = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)  # 12:00 in New York
PHONE = "+12125550142"


def test_signup_by_phone_sends_one_confirmation_and_no_nudge_before_yes(database_url: str) -> None:
    harness = Harness(make_settings(database_url))
    response = harness.client.post("/subscribe", json={"phone": "(212) 555-0142", "consent": True})
    assert response.status_code == 202

    harness.tick(NOON_NEW_YORK)
    assert len(harness.sms.sent) == 1
    confirmation = harness.sms.sent[0]
    assert confirmation.to == PHONE
    assert "YES" in confirmation.body
    assert "STOP" in confirmation.body

    harness.tick(NOON_NEW_YORK + timedelta(days=2))
    assert len(harness.sms.sent) == 1, "a pending subscriber must get no nudge"


def test_yes_confirms_and_welcome_follows_within_the_window(database_url: str) -> None:
    harness = Harness(make_settings(database_url))
    harness.client.post("/subscribe", json={"phone": PHONE, "consent": True})
    harness.tick(NOON_NEW_YORK)

    reply = harness.text_in(PHONE, "yes!")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/xml")
    assert "<Message>" in reply.text

    harness.tick(NOON_NEW_YORK + timedelta(minutes=1))
    kinds = [m for m in harness.sms.sent if "YES" not in m.body]
    assert kinds, "the welcome nudge should go out once confirmed"


def test_same_answer_for_known_and_unknown_addresses(database_url: str) -> None:
    harness = Harness(make_settings(database_url))
    first = harness.client.post("/subscribe", json={"email": "sam@example.com", "consent": True})
    second = harness.client.post("/subscribe", json={"email": "sam@example.com", "consent": True})
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()


def test_bad_phone_is_422_naming_the_field(database_url: str) -> None:
    harness = Harness(make_settings(database_url))
    response = harness.client.post("/subscribe", json={"phone": "12", "consent": True})
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["detail"]] == ["phone"]


def test_missing_consent_is_422_naming_consent(database_url: str) -> None:
    harness = Harness(make_settings(database_url))
    response = harness.client.post("/subscribe", data={"email": "sam@example.com"})
    assert response.status_code == 422
    assert "consent" in response.text.lower()


def test_email_confirm_link_get_changes_nothing_and_post_confirms(database_url: str) -> None:
    harness = Harness(make_settings(database_url))
    harness.client.post("/subscribe", data={"email": "sam@example.com", "consent": "on"})
    harness.tick(NOON_NEW_YORK)
    assert len(harness.email.sent) == 1
    link = re.search(r"https://steady\.example\.org(/confirm/[\w.\-]+)", harness.email.sent[0].body)
    assert link is not None
    path = link.group(1)

    with harness.runtime.sessions() as session:
        assert session.scalar(select(Channel.status)) == "pending"
    assert harness.client.get(path).status_code == 200
    with harness.runtime.sessions() as session:
        assert session.scalar(select(Channel.status)) == "pending"

    assert harness.client.post(path).status_code == 200
    with harness.runtime.sessions() as session:
        assert session.scalar(select(Channel.status)) == "active"
        assert session.scalar(select(Message.kind).where(Message.kind == "confirm")) == "confirm"
