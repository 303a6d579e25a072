"""Channels, subscribers and nudges of the Steady the feedback tests run, read back."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from service.devtools.sandbox.state import SigningKey
from service.storage.models import Channel, Message, Subscriber
from service.tokens import Purpose, make_token
from tests.support.world import Harness

PHONE = "+12125550142"
EMAIL = "sam@example.com"
STATUS_PATH = "/webhooks/twilio/status"
EVENTS_PATH = "/webhooks/sendgrid/events"


# --- helpers ---------------------------------------------------------------------------


def confirm_every_channel(harness: Harness) -> dict[str, int]:
    """Press each channel's confirm link (POST), as the person would."""
    secret = harness.settings.secret_key.get_secret_value()
    with harness.runtime.sessions() as session:
        channels = {kind: cid for cid, kind in session.execute(select(Channel.id, Channel.kind))}
    for channel_id in channels.values():
        token = make_token(secret, Purpose.CONFIRM, channel_id)
        assert harness.client.post(f"/confirm/{token}").status_code == 200
    return channels


def channel(harness: Harness, kind: str) -> Channel:
    with harness.runtime.sessions() as session:
        found = session.scalar(select(Channel).where(Channel.kind == kind))
        assert found is not None
        return found


def subscriber(harness: Harness) -> Subscriber:
    with harness.runtime.sessions() as session:
        found: Subscriber | None = session.scalar(select(Subscriber))
        assert found is not None
        return found


def count(harness: Harness, model: type[Any], *where: Any) -> int:
    with harness.runtime.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def nudges(harness: Harness, **filters: Any) -> list[Message]:
    with harness.runtime.sessions() as session:
        query = select(Message).where(Message.kind != "confirm").order_by(Message.id)
        for name, value in filters.items():
            query = query.where(getattr(Message, name) == value)
        return list(session.scalars(query))


# --- codes posted as Twilio signs them -----------------------------------------------------

PLAIN_KEY = SigningKey.generate()
