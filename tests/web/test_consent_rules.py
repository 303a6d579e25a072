"""Consent: web-triggered confirmations say nothing about the topic, and after STOP only
the phone itself brings a number back (never a web signup, never an old link)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from service.messages.compose import DISCREET_SENDER_NAME
from service.storage.models import Channel, Message, Subscriber, Suppression
from service.tokens import Purpose, make_token
from tests.support.world import Harness, make_settings

NOON_NEW_YORK = datetime(2027, 3, 1, 17, 0, tzinfo=UTC)
PHONE = "+12125550142"
UNKNOWN_PHONE = "+12125550177"
EMAIL = "sam@example.com"
# What must not be told to whoever holds a phone or an inbox someone else typed in.
REVEALING = re.compile(
    r"\b(?:separat\w*|partner\w*|ex|ex-\w*|spouse|marri\w*|divorc\w*|husband|wife|"
    r"break ?up|relationship|reach(?:ed|ing)? out|them)\b",
    re.IGNORECASE,
)


def fresh(database_url: str) -> Harness:
    harness = Harness(make_settings(database_url))
    harness.now = NOON_NEW_YORK
    return harness


def twiml_text(response: Any) -> str | None:
    messages = ET.fromstring(response.text).findall("Message")  # noqa: S314 - our own TwiML
    return messages[0].text if messages else None


def channel_state(harness: Harness, address: str) -> tuple[Any, ...] | None:
    with harness.runtime.sessions() as session:
        found = session.scalar(select(Channel).where(Channel.address == address))
        if found is None:
            return None
        return (
            found.status,
            found.consent_at,
            found.consent_method,
            found.consent_evidence,
            found.confirmed_at,
            found.stopped_at,
            found.status_reason,
        )


def message_count(harness: Harness) -> int:
    with harness.runtime.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Message)) or 0)


def link(harness: Harness, purpose: Purpose, address: str) -> str:
    """The path a message's link for this address and purpose carries."""
    with harness.runtime.sessions() as session:
        channel_id = session.scalar(select(Channel.id).where(Channel.address == address))
    assert channel_id is not None
    token = make_token(harness.settings.secret_key.get_secret_value(), purpose, channel_id)
    prefix = {Purpose.CONFIRM: "confirm", Purpose.UNSUBSCRIBE: "u"}[purpose]
    return f"/{prefix}/{token}"


# --- discreet confirmations -------------------------------------------------------------


def test_a_web_signups_confirmation_text_reveals_nothing_yet_keeps_the_carrier_rules(
    database_url: str,
) -> None:
    harness = fresh(database_url)
    harness.client.post("/subscribe", json={"phone": PHONE, "consent": True})
    harness.tick()
    [confirmation] = harness.sms.sent
    body = confirmation.body
    assert REVEALING.search(body) is None, body
    assert "Steady" in body  # the programme's neutral name
    assert "up to 1 msg/day" in body
    assert "Msg & data rates may apply" in body
    for word in ("YES", "HELP", "STOP"):
        assert re.search(rf"\b{word}\b", body), word


def test_a_web_signups_confirmation_email_is_neutral_from_subject_to_footer(
    database_url: str,
) -> None:
    harness = fresh(database_url)
    harness.client.post("/subscribe", data={"email": EMAIL, "consent": "on"})
    harness.tick()
    [confirmation] = harness.email.sent
    assert confirmation.sender_name == DISCREET_SENDER_NAME
    for part in (confirmation.subject, confirmation.body, confirmation.html):
        assert part
        assert REVEALING.search(part) is None, part
    assert "/confirm/" in confirmation.body


def test_a_pending_web_signup_asked_again_by_text_still_hears_nothing_revealing(
    database_url: str,
) -> None:
    harness = fresh(database_url)
    harness.client.post("/subscribe", json={"phone": PHONE, "consent": True})
    reply = twiml_text(harness.text_in(PHONE, "what is this about?"))
    assert reply is not None
    assert "YES" in reply
    assert REVEALING.search(reply) is None, reply


def test_join_texted_from_the_phone_itself_may_name_the_topic(database_url: str) -> None:
    harness = fresh(database_url)
    reply = twiml_text(harness.text_in(PHONE, "JOIN"))
    assert reply is not None
    assert reply.startswith("Steady: ")
    assert REVEALING.search(reply), "the person asked by texting the number themselves"


# --- after STOP, only the phone ------------------------------------------------------------


def stopped_subscriber(harness: Harness) -> None:
    harness.client.post("/subscribe", json={"phone": PHONE, "consent": True})
    harness.tick()
    harness.text_in(PHONE, "YES")
    harness.tick(NOON_NEW_YORK + timedelta(minutes=5))
    harness.text_in(PHONE, "STOP")
    assert channel_state(harness, PHONE)[0] == "stopped"  # type: ignore[index]


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "form"])
def test_a_web_signup_for_a_stopped_number_answers_as_for_an_unknown_one_and_does_nothing(
    database_url: str, as_json: bool
) -> None:
    harness = fresh(database_url)
    stopped_subscriber(harness)
    before, sent_before, rows_before = (
        channel_state(harness, PHONE),
        len(harness.sms.sent),
        message_count(harness),
    )

    def post(phone: str) -> Any:
        if as_json:
            return harness.client.post("/subscribe", json={"phone": phone, "consent": True})
        return harness.client.post("/subscribe", data={"phone": phone, "consent": "on"})

    stopped = post(PHONE)
    unknown = post(UNKNOWN_PHONE)
    assert stopped.status_code == unknown.status_code == 202
    assert stopped.text == unknown.text
    assert stopped.headers["content-type"] == unknown.headers["content-type"]
    assert channel_state(harness, PHONE) == before
    harness.tick(NOON_NEW_YORK + timedelta(hours=1))
    assert [m.to for m in harness.sms.sent[sent_before:]] == [UNKNOWN_PHONE]
    assert message_count(harness) == rows_before + 1  # the unknown number's confirmation only


def test_a_web_signup_for_a_number_that_texted_stop_as_a_stranger_does_nothing(
    database_url: str,
) -> None:
    harness = fresh(database_url)
    harness.text_in(PHONE, "STOP")
    response = harness.client.post("/subscribe", json={"phone": PHONE, "consent": True})
    assert response.status_code == 202
    harness.tick()
    assert harness.sms.sent == []
    assert channel_state(harness, PHONE) is None


def test_an_old_confirmation_link_does_not_reopen_a_stopped_number(database_url: str) -> None:
    harness = fresh(database_url)
    stopped_subscriber(harness)
    before = channel_state(harness, PHONE)
    with harness.runtime.sessions() as session:
        plan_before = session.scalar(select(Subscriber.next_plan_at))
    path = link(harness, Purpose.CONFIRM, PHONE)
    assert harness.client.get(path).status_code == 200
    response = harness.client.post(path)
    assert response.status_code == 200
    assert "cannot be confirmed" in response.text
    assert "STOP" not in response.text, "the page says nothing about the number's history"
    assert channel_state(harness, PHONE) == before
    with harness.runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Suppression)) == 1
        assert session.scalar(select(Subscriber.next_plan_at)) == plan_before
    sent_before = len(harness.sms.sent)
    harness.tick(NOON_NEW_YORK + timedelta(days=1))
    assert harness.sms.sent[sent_before:] == [], "nothing goes to a stopped number"


def test_an_old_confirmation_link_does_not_reopen_an_unsubscribed_email(database_url: str) -> None:
    harness = fresh(database_url)
    harness.client.post("/subscribe", json={"email": EMAIL, "consent": True})
    path = link(harness, Purpose.CONFIRM, EMAIL)
    harness.client.post(path)
    assert channel_state(harness, EMAIL)[0] == "active"  # type: ignore[index]
    assert harness.client.post(link(harness, Purpose.UNSUBSCRIBE, EMAIL)).status_code == 200
    before = channel_state(harness, EMAIL)
    assert before is not None
    assert before[0] == "stopped"
    response = harness.client.post(path)
    assert response.status_code == 200
    assert channel_state(harness, EMAIL) == before


def test_start_from_the_phone_brings_a_stopped_number_back(database_url: str) -> None:
    harness = fresh(database_url)
    stopped_subscriber(harness)
    reply = twiml_text(harness.text_in(PHONE, "START"))
    assert reply is not None
    assert channel_state(harness, PHONE)[0] == "active"  # type: ignore[index]
    with harness.runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Suppression)) == 0


def test_an_unsubscribed_email_signing_up_again_is_confirmed_only_from_its_inbox(
    database_url: str,
) -> None:
    harness = fresh(database_url)
    harness.client.post("/subscribe", json={"email": EMAIL, "consent": True})
    harness.client.post(link(harness, Purpose.CONFIRM, EMAIL))
    harness.client.post(link(harness, Purpose.UNSUBSCRIBE, EMAIL))
    assert channel_state(harness, EMAIL)[0] == "stopped"  # type: ignore[index]
    harness.client.post("/subscribe", json={"email": EMAIL, "consent": True})
    assert channel_state(harness, EMAIL)[0] == "pending"  # type: ignore[index]
    harness.tick()
    assert [m.to for m in harness.email.sent][-1] == EMAIL
    harness.client.post(link(harness, Purpose.CONFIRM, EMAIL))
    assert channel_state(harness, EMAIL)[0] == "active"  # type: ignore[index]
    with harness.runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Suppression)) == 0
