"""Test helpers: settings for a test database and a recording outbox.

The outbox is one of Steady's real providers; here its writer appends to a list
instead of printing, so tests read exactly what would have gone out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from service.channels import ChannelKind
from service.pacing.policy import pacing_policy
from service.providers.base import OutboundMessage, Provider
from service.providers.outbox import OutboxProvider
from service.sending.planner import plan_due
from service.sending.runtime import Runtime
from service.settings import Settings, load_settings
from service.storage.db import session_factory
from service.storage.models import Channel, ChannelStatus, Message, Subscriber
from service.web.app import create_app

TEST_TWILIO_TOKEN = "test-twilio-auth-token"
PUBLIC_URL = "https://steady.example.org"


# Zones around the globe: at any moment one of them is in mid-day.
def plan_welcome_nudges(
    settings: Settings, phones: Sequence[str], now: datetime, timezone: str
) -> list[int]:
    """Confirmed SMS subscribers, each given a welcome nudge due at `now` by the planner.

    Returns the message ids in the order a dispatcher claims them.
    """
    sessions = session_factory(settings.database_url)
    with sessions() as session:
        for phone in phones:
            subscriber = Subscriber(timezone=timezone, next_plan_at=now)
            subscriber.channels.append(
                Channel(
                    kind=ChannelKind.SMS,
                    address=phone,
                    status=ChannelStatus.ACTIVE,
                    consent_at=now,
                    consent_method="import",
                    confirmed_at=now,
                )
            )
            session.add(subscriber)
        session.commit()
    plan_due(sessions, pacing_policy(settings), now)
    with sessions() as session:
        rows = session.execute(
            select(Message.id, Message.scheduled_for)
            .where(Message.status == "scheduled", Message.kind == "welcome")
            .order_by(Message.priority, Message.scheduled_for, Message.id)
        ).all()
    assert len(rows) == len(phones)
    assert all(at <= now for _, at in rows), "the planner made every welcome due now"
    return [message_id for message_id, _ in rows]


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "STEADY_DATABASE_URL": database_url,
        "STEADY_PUBLIC_URL": PUBLIC_URL,
        "STEADY_SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
        "TWILIO_AUTH_TOKEN": TEST_TWILIO_TOKEN,
        "STEADY_POSTAL_ADDRESS": "Steady, 1 Test Street, Springfield",
        # Senders paced fast enough that no test waits on them; the rate-limit
        # tests set their own rates.
        "STEADY_SMS_RATE_PER_SECOND": "1000",
        "STEADY_EMAIL_RATE_PER_SECOND": "1000",
        # Nudges go when pacing says, unspread, so tests can expect them at `now`;
        # tests/pacing/test_spread.py checks the spreading itself.
        "STEADY_SEND_SPREAD_MINUTES": "0",
        "_env_file": None,
    }
    values.update(overrides)
    return load_settings(**values)


class RecordingProvider:
    """The outbox provider, writing into a list the test reads."""

    def __init__(self, name: str = "outbox") -> None:
        self.name = name
        self.sent: list[OutboundMessage] = []
        self._outbox = OutboxProvider(writer=lambda _text: None)

    def send(self, message: OutboundMessage) -> str:
        self.sent.append(message)
        return self._outbox.send(message)


@dataclass
class Harness:
    """The web app and an in-process runtime over one database, outbox providers."""

    settings: Settings
    sms: RecordingProvider = field(default_factory=RecordingProvider)
    email: RecordingProvider = field(default_factory=RecordingProvider)

    now: datetime = field(default_factory=lambda: datetime(2026, 3, 2, 17, 0, tzinfo=UTC))

    def __post_init__(self) -> None:
        providers: dict[ChannelKind, Provider] = {"sms": self.sms, "email": self.email}
        self.runtime = Runtime.from_settings(self.settings, providers=providers)
        app = create_app(self.settings, sessions=self.runtime.sessions, clock=lambda: self.now)
        self.client = TestClient(app)

    def tick(self, now: datetime | None = None) -> Any:
        """One pass at `now` (which then becomes the harness's time), or at the current time."""
        if now is not None:
            self.now = now
        return self.runtime.tick(self.now)

    def text_in(self, sender: str, body: str, sid: str | None = None) -> Any:
        """Post a correctly signed Twilio inbound webhook, as Twilio would."""
        params = {
            "From": sender,
            "To": "+15005550006",
            "Body": body,
            "MessageSid": sid or f"SM{abs(hash((sender, body, datetime.now()))):032x}"[:34],
        }
        url = f"{PUBLIC_URL}/webhooks/twilio/inbound"
        signature = RequestValidator(TEST_TWILIO_TOKEN).compute_signature(url, params)
        return self.client.post(
            "/webhooks/twilio/inbound", data=params, headers={"X-Twilio-Signature": signature}
        )


def enrol_one_person(harness: Harness, phone: str, email: str) -> None:
    """One person with a confirmed email and phone, proven together (issue 11).

    A phone and an email signed up together are two people; one person's two
    channels come from adding the second on the first one's preferences page and
    confirming it on itself. Each confirmation is sent (dispatch only, nothing
    planned) and confirmed by its link; the caller's next tick plans the welcome.
    """
    from service.tokens import Purpose, make_token

    response = harness.client.post("/subscribe", json={"email": email, "consent": True})
    assert response.status_code == 202
    secret = harness.settings.secret_key.get_secret_value()

    def confirm(kind: str) -> int:
        harness.runtime.dispatch(harness.now)  # the confirmation goes out
        with harness.runtime.sessions() as session:
            found = session.scalar(select(Channel.id).where(Channel.kind == kind))
        assert found is not None
        link = f"/confirm/{make_token(secret, Purpose.CONFIRM, found)}"
        assert harness.client.post(link).status_code == 200
        return int(found)

    email_id = confirm("email")
    prefs = f"/preferences/{make_token(secret, Purpose.PREFERENCES, email_id)}"
    assert harness.client.post(prefs, data={"new_phone": phone}).status_code == 200
    confirm("sms")
    with harness.runtime.sessions() as session:
        owners = set(session.scalars(select(Channel.subscriber_id)))
    assert len(owners) == 1, "the phone joined the email's person"


def confirmation(harness: Harness, channel: str) -> Message:
    """The confirmation message that went to the harness's subscriber on `channel`."""
    with harness.runtime.sessions() as session:
        message = session.scalar(
            select(Message).where(Message.kind == "confirm", Message.channel == channel)
        )
        assert message is not None
        return message
