"""Feedback end to end: SDKs to the sandbox, its signed callbacks and events relayed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import structlog
from sqlalchemy import select

from service.devtools.sandbox.receiver import ReceivedRequest, WebhookReceiver
from service.devtools.sandbox.server import SandboxServer
from service.providers.sendgrid.email import SendGridEmailProvider
from service.providers.twilio.sms import TwilioSmsProvider
from service.storage.models import DeliveryEvent, Message, Suppression
from tests.sending.feedback.steady import (
    EMAIL,
    EVENTS_PATH,
    PHONE,
    STATUS_PATH,
    channel,
    count,
    nudges,
    subscriber,
)
from tests.support.world import TEST_TWILIO_TOKEN, Harness, enrol_one_person, make_settings

RELAYED_HEADERS = (
    "Content-Type",
    "X-Twilio-Signature",
    "X-Twilio-Email-Event-Webhook-Signature",
    "X-Twilio-Email-Event-Webhook-Timestamp",
)


def relay(harness: Harness, requests: list[ReceivedRequest]) -> None:
    """Post what the sandbox sent, byte for byte, into the app."""
    for request in requests:
        headers = {
            name: value for name in RELAYED_HEADERS if (value := request.header(name)) is not None
        }
        response = harness.client.post(request.path, content=request.body, headers=headers)
        assert response.status_code == 200, response.text


def status_callbacks_for(receiver: WebhookReceiver, sid: str, count: int) -> list[ReceivedRequest]:
    found = receiver.wait_for(
        lambda r: r.path.startswith(STATUS_PATH) and r.form().get("MessageSid") == sid, count
    )
    assert len(found) == count, f"expected {count} callbacks for {sid}, got {len(found)}"
    return found


def tick_until(harness: Harness, done: Any, *, step: timedelta, limit: int) -> None:
    for _ in range(limit):
        harness.tick(harness.now + step)
        if done():
            return
    raise AssertionError("the expected send never happened")


# --- the sandbox at the network edge -----------------------------------------------------


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def sandbox(receiver: WebhookReceiver) -> Iterator[SandboxServer]:
    with SandboxServer(
        public_url=receiver.url, auth_token=TEST_TWILIO_TOKEN, callback_delay_seconds=0.01
    ) as running:
        yield running


@pytest.fixture
def edge(database_url: str, sandbox: SandboxServer, receiver: WebhookReceiver) -> Harness:
    """Steady with the real SDKs against the sandbox; its public URL is the receiver."""
    sandbox.reset()
    receiver.clear()
    settings = make_settings(
        database_url,
        STEADY_PUBLIC_URL=receiver.url,
        SENDGRID_WEBHOOK_PUBLIC_KEY=sandbox.public_key_b64,
    )
    harness = Harness(settings)
    harness.runtime.providers["sms"] = TwilioSmsProvider(
        account_sid="AC" + "1" * 32,
        auth_token=TEST_TWILIO_TOKEN,
        from_number="+15005550006",
        api_url=sandbox.url,
        timeout_seconds=2.0,
    )
    harness.runtime.providers["email"] = SendGridEmailProvider(
        api_key="SG.test", from_email="steady@example.org", api_url=sandbox.url
    )
    return harness


def enrol_both(harness: Harness, sandbox: SandboxServer, receiver: WebhookReceiver) -> None:
    enrol_one_person(harness, PHONE, EMAIL)  # both confirmations go out through the SDKs
    receiver.wait_for(lambda r: r.path.startswith(STATUS_PATH), 2)
    receiver.wait_for(lambda r: r.path.startswith(EVENTS_PATH), 2)
    receiver.clear()


def test_undelivered_30005_suppresses_sms_and_the_next_nudge_goes_by_email(
    edge: Harness, sandbox: SandboxServer, receiver: WebhookReceiver
) -> None:
    enrol_both(edge, sandbox, receiver)
    sandbox.add_fault(match_to=PHONE, callback_status="undelivered", error_code="30005")
    edge.tick()
    [welcome] = nudges(edge)
    assert (welcome.channel, welcome.status) == ("sms", "sent")
    edge.tick()  # the planner already has the next SMS nudge waiting
    [waiting] = nudges(edge, status="scheduled")
    assert waiting.channel == "sms"

    relay(edge, status_callbacks_for(receiver, str(welcome.provider_id), 2))

    sms = channel(edge, "sms")
    assert (sms.status, sms.status_reason) == ("suppressed", "twilio_30005")
    assert count(edge, Suppression, Suppression.channel == "sms") == 1
    assert nudges(edge, status="undelivered")[0].error_code == "30005"
    assert [m.status for m in nudges(edge, channel="sms")] == ["undelivered", "cancelled"]
    twilio_before = len(sandbox.messages("twilio"))
    tick_until(
        edge,
        lambda: nudges(edge, channel="email", status="sent"),
        step=timedelta(hours=2),
        limit=24,
    )
    assert len(sandbox.messages("twilio")) == twilio_before, "nothing more by SMS"
    [sent] = [m for m in sandbox.messages("sendgrid") if m["subject"] and m["to"] == EMAIL][-1:]
    assert sent["id"] == nudges(edge, channel="email", status="sent")[0].provider_id


def test_sendgrid_bounce_suppresses_email_and_three_copies_have_one_effect(
    edge: Harness, sandbox: SandboxServer, receiver: WebhookReceiver
) -> None:
    sandbox.add_fault(match_to=EMAIL, sendgrid_event="bounce")
    edge.client.post("/subscribe", json={"email": EMAIL, "consent": True})
    edge.tick()
    with edge.runtime.sessions() as session:
        x_message_id = session.scalar(select(Message.provider_id))
    assert x_message_id
    posts = receiver.wait_for(
        lambda r: r.path == EVENTS_PATH and f'"{x_message_id}.'.encode() in r.body, 2
    )
    assert [json.loads(p.body)[0]["event"] for p in posts] == ["processed", "bounce"]
    bounce = posts[1]
    relay(edge, [posts[0], bounce, bounce, bounce])

    email = channel(edge, "email")
    assert (email.status, email.status_reason) == ("suppressed", "sendgrid_bounce")
    assert count(edge, Suppression) == 1
    assert count(edge, DeliveryEvent, DeliveryEvent.event_type == "bounce") == 1
    with edge.runtime.sessions() as session:
        confirmation = session.scalar(select(Message))
        assert confirmation is not None
        assert confirmation.status == "undelivered"


def test_opt_out_21610_from_a_send_stops_the_channel_and_adds_a_suppression(
    edge: Harness, sandbox: SandboxServer, receiver: WebhookReceiver
) -> None:
    enrol_both(edge, sandbox, receiver)
    sandbox.add_fault(match_to=PHONE, http_status=400, twilio_code=21610)
    edge.tick()
    [welcome] = nudges(edge)
    assert (welcome.channel, welcome.status, welcome.error_code) == ("sms", "failed", "21610")
    sms = channel(edge, "sms")
    assert (sms.status, sms.status_reason) == ("stopped", "carrier_opt_out_21610")
    assert count(edge, Suppression, Suppression.channel == "sms") == 1
    edge.tick()
    assert [(m.channel, m.status) for m in nudges(edge)][1:] == [("email", "sent")]
    assert len(sandbox.messages("twilio")) == 1, "only the confirmation got through"


def test_invalid_number_21211_from_a_send_moves_nudges_to_email(
    edge: Harness, sandbox: SandboxServer, receiver: WebhookReceiver
) -> None:
    enrol_both(edge, sandbox, receiver)
    sandbox.add_fault(match_to=PHONE, http_status=400, twilio_code=21211)
    edge.tick()
    assert channel(edge, "sms").status == "suppressed"
    assert subscriber(edge).next_plan_at is not None, "a re-plan is asked for"
    edge.tick()
    assert [(m.channel, m.status) for m in nudges(edge)] == [("sms", "failed"), ("email", "sent")]


def test_unregistered_sender_30034_pauses_the_subscriber_and_alerts_operators(
    edge: Harness, sandbox: SandboxServer, receiver: WebhookReceiver
) -> None:
    enrol_both(edge, sandbox, receiver)
    sandbox.add_fault(match_to=PHONE, http_status=400, twilio_code=30034)
    with structlog.testing.capture_logs() as logs:
        edge.tick()
    person = subscriber(edge)
    assert person.flag_reason == "sender_compliance_30034"
    assert person.paused_until is not None
    assert person.paused_until >= edge.now + timedelta(hours=24)
    alerts = [entry for entry in logs if entry["event"] == "operator_alert"]
    assert [(a["code"], a["subscriber_id"]) for a in alerts] == [("30034", person.id)]
    assert PHONE not in repr(alerts)
    assert EMAIL not in repr(alerts)
    assert channel(edge, "sms").status == "active", "the number itself is fine"
    edge.tick(edge.now + timedelta(hours=30))
    assert len(sandbox.messages("twilio")) == 1, "only the confirmation: never retried blindly"
    assert nudges(edge, status="scheduled") == []


def test_rate_limit_20429_is_retried_later_and_leaves_the_channel_alone(
    edge: Harness, sandbox: SandboxServer, receiver: WebhookReceiver
) -> None:
    enrol_both(edge, sandbox, receiver)
    sandbox.add_fault(match_to=PHONE, http_status=429, twilio_code=20429, retry_after=120, times=1)
    edge.tick()
    [welcome] = nudges(edge)
    assert (welcome.status, welcome.error_code) == ("scheduled", "20429")
    assert welcome.scheduled_for >= edge.now + timedelta(seconds=120)
    assert channel(edge, "sms").status == "active"
    edge.tick(edge.now + timedelta(minutes=3))
    assert nudges(edge)[0].status == "sent"
