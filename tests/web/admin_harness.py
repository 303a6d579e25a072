"""A Steady with an admin token, an HTTPS client for it, and a day of traffic to report on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from twilio.request_validator import RequestValidator

from tests.support.world import PUBLIC_URL, TEST_TWILIO_TOKEN, Harness, make_settings

NOON_NEW_YORK = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
ADMIN_TOKEN = "admin-token-for-tests-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PHONE = "+12125550142"
OTHER_PHONE = "+12125550143"


EMAIL = "sam@example.com"


def admin_harness(database_url: str, **overrides: str) -> Harness:
    settings = make_settings(database_url, **{"STEADY_ADMIN_TOKEN": ADMIN_TOKEN, **overrides})
    return Harness(settings, now=NOON_NEW_YORK)


def confirmed_by_sms(harness: Harness, phone: str = PHONE) -> int:
    """Sign up through the API, confirm with YES; returns the subscriber id."""
    harness.client.post("/subscribe", json={"phone": phone, "consent": True})
    harness.tick()
    harness.text_in(phone, "YES")
    [row] = [
        s
        for s in harness.client.get("/admin/api/subscribers", headers=BEARER).json()["subscribers"]
        if s["channels"][0]["address"].endswith(phone[-2:]) and s["status"] == "active"
    ]
    return int(row["id"])


def deliver(harness: Harness, message_id: int) -> None:
    """A signed Twilio status callback saying the message was delivered."""
    path = f"/webhooks/twilio/status?m={message_id}"
    form = {"MessageSid": f"outbox-{message_id}", "MessageStatus": "delivered"}
    signature = RequestValidator(TEST_TWILIO_TOKEN).compute_signature(PUBLIC_URL + path, form)
    response = harness.client.post(path, data=form, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200


def busy_day(harness: Harness) -> int:
    """A confirmed SMS subscriber who got a welcome (delivered) and logged a contact,
    a pending email subscriber, and a second number that said STOP. Returns the first id."""
    subscriber_id = confirmed_by_sms(harness)
    harness.tick(NOON_NEW_YORK + timedelta(minutes=1))  # the welcome nudge
    for message in harness.sms.sent:
        deliver(harness, message.message_id)
    harness.text_in(PHONE, "ME")
    harness.client.post("/subscribe", json={"email": EMAIL, "consent": True})
    harness.client.post("/subscribe", json={"phone": OTHER_PHONE, "consent": True})
    harness.tick()
    harness.text_in(OTHER_PHONE, "YES")
    harness.text_in(OTHER_PHONE, "STOP")
    return subscriber_id


def https_client(harness: Harness) -> TestClient:
    """A client on https, so the Secure session cookie is stored and sent back."""
    return TestClient(harness.client.app, base_url="https://testserver")
