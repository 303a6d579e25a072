"""A subscriber texting Steady through the signed webhook, and the rows and replies that follow."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from service.storage.models import Message, Subscriber
from tests.support.world import Harness, make_settings

NOON_NEW_YORK = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)  # 12:00 in New York, a Monday
PHONE = "+12125550142"


SAFETY_LINE = "National Domestic Violence Hotline 1-800-799-7233"


def subscribed(database_url: str, **overrides: Any) -> Harness:
    """A confirmed SMS subscriber, welcome not yet planned."""
    harness = Harness(make_settings(database_url, **overrides))
    harness.client.post("/subscribe", json={"phone": PHONE, "consent": True})
    harness.tick(NOON_NEW_YORK)
    harness.text_in(PHONE, "YES")
    return harness


def welcomed(database_url: str, **overrides: Any) -> Harness:
    """A subscriber whose welcome went out and whose next nudge is scheduled."""
    harness = subscribed(database_url, **overrides)
    harness.tick(NOON_NEW_YORK + timedelta(minutes=1))  # plans and sends the welcome
    harness.tick(NOON_NEW_YORK + timedelta(minutes=2))  # plans the next nudge
    return harness


def say(harness: Harness, body: str) -> str | None:
    """Text Steady as the subscriber; the TwiML reply's text, or None for an empty one."""
    response = harness.text_in(PHONE, body)
    assert response.status_code == 200
    return twiml_text(response.text)


def twiml_text(twiml: str) -> str | None:
    messages = ET.fromstring(twiml).findall("Message")  # noqa: S314 - our own TwiML, not untrusted
    assert len(messages) <= 1, "one reply at most"
    return messages[0].text if messages else None


def subscriber(harness: Harness) -> Subscriber:
    with harness.runtime.sessions() as session:
        found = session.scalars(select(Subscriber)).one()
        session.expunge(found)
        return found


def rows(harness: Harness, model: Any) -> list[Any]:
    with harness.runtime.sessions() as session:
        found = list(session.scalars(select(model).order_by(model.id)))
        session.expunge_all()
        return found


def scheduled_nudges(harness: Harness) -> list[Message]:
    return [m for m in rows(harness, Message) if m.status == "scheduled" and m.priority == 1]


def sms_sent_to_phone(harness: Harness) -> list[str]:
    return [m.body for m in harness.sms.sent if m.to == PHONE]


def replies(harness: Harness) -> list[Message]:
    return [m for m in rows(harness, Message) if m.provider == "twiml"]
