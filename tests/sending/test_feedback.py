"""Delivery feedback into pacing (PRODUCT.md "Delivery feedback").

The real `twilio` and `sendgrid` SDKs send to the sandbox; the sandbox signs its
status callbacks and events and posts them to a `WebhookReceiver` standing at
STEADY_PUBLIC_URL, and each test relays those exact requests (path, signature
headers, raw body) into the app. Codes the sandbox cannot produce on its own
path are posted as Twilio would sign them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import structlog
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from service.devtools.sandbox.receiver import ReceivedRequest, WebhookReceiver
from service.devtools.sandbox.server import SandboxServer
from service.devtools.sandbox.state import SigningKey
from service.providers.sendgrid import email as sendgrid_email
from service.providers.sendgrid.codes import MESSAGE_ID_ARG
from service.providers.sendgrid.email import SendGridEmailProvider
from service.providers.twilio.sms import TwilioSmsProvider
from service.storage.models import Channel, DeliveryEvent, Message, Subscriber, Suppression
from service.tokens import Purpose, make_token
from tests.support.world import TEST_TWILIO_TOKEN, Harness, make_settings

PHONE = "+12125550142"
EMAIL = "sam@example.com"
STATUS_PATH = "/webhooks/twilio/status"
EVENTS_PATH = "/webhooks/sendgrid/events"
RELAYED_HEADERS = (
    "Content-Type",
    "X-Twilio-Signature",
    "X-Twilio-Email-Event-Webhook-Signature",
    "X-Twilio-Email-Event-Webhook-Timestamp",
)


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


def post_status(harness: Harness, message: Message, status: str, code: str | None) -> None:
    """A status callback for one of our messages, signed as Twilio signs it."""
    params = {
        "MessageSid": str(message.provider_id),
        "MessageStatus": status,
        "AccountSid": "AC" + "1" * 32,
        "To": PHONE,
        "From": "+15005550006",
    }
    if code:
        params["ErrorCode"] = code
    path = f"{STATUS_PATH}?m={message.id}"
    url = harness.settings.public_url + path
    signature = RequestValidator(TEST_TWILIO_TOKEN).compute_signature(url, params)
    response = harness.client.post(path, data=params, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200


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
    response = harness.client.post(
        "/subscribe", json={"phone": PHONE, "email": EMAIL, "consent": True}
    )
    assert response.status_code == 202
    harness.tick()  # both confirmations go out through the SDKs
    confirm_every_channel(harness)
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


# --- codes posted as Twilio signs them -----------------------------------------------------

PLAIN_KEY = SigningKey.generate()


@pytest.fixture
def plain(database_url: str) -> Harness:
    """Steady with outbox providers; the person has confirmed SMS and email."""
    settings = make_settings(database_url, SENDGRID_WEBHOOK_PUBLIC_KEY=PLAIN_KEY.public_key_b64)
    harness = Harness(settings)
    harness.client.post("/subscribe", json={"phone": PHONE, "email": EMAIL, "consent": True})
    harness.tick()
    confirm_every_channel(harness)
    harness.tick()  # the welcome goes by SMS
    harness.tick()  # and the next nudge is planned
    return harness


def add_sent_sms(harness: Harness, n: int) -> list[Message]:
    """Earlier SMS nudges on the channel, sent and waiting for their callbacks."""
    sms = channel(harness, "sms")
    with harness.runtime.sessions() as session:
        rows = [
            Message(
                subscriber_id=sms.subscriber_id,
                channel_id=sms.id,
                channel="sms",
                kind="restraint",
                template="restraint_01",
                rule="restraint_mix",
                status="sent",
                scheduled_for=harness.now,
                sent_at=harness.now,
                provider="twilio",
                provider_id=f"SM{i:032x}",
            )
            for i in range(1, n + 1)
        ]
        session.add_all(rows)
        session.commit()
        for row in rows:
            session.refresh(row)
        session.expunge_all()
    return rows


def test_30003_suppresses_sms_only_on_the_third_in_a_row(plain: Harness) -> None:
    first, second, third = add_sent_sms(plain, 3)
    post_status(plain, first, "undelivered", "30003")
    post_status(plain, second, "undelivered", "30003")
    assert channel(plain, "sms").status == "active"
    post_status(plain, third, "undelivered", "30003")
    sms = channel(plain, "sms")
    assert (sms.status, sms.status_reason) == ("suppressed", "twilio_30003_x3")


def test_a_delivery_between_30003s_breaks_the_run(plain: Harness) -> None:
    messages = add_sent_sms(plain, 4)
    post_status(plain, messages[0], "undelivered", "30003")
    post_status(plain, messages[1], "undelivered", "30003")
    post_status(plain, messages[2], "delivered", None)
    post_status(plain, messages[3], "undelivered", "30003")
    assert channel(plain, "sms").status == "active"


def test_carrier_filtering_30007_pauses_flags_and_cancels_nudges(plain: Harness) -> None:
    [message] = add_sent_sms(plain, 1)
    assert nudges(plain, status="scheduled"), "a nudge is waiting"
    with structlog.testing.capture_logs() as logs:
        post_status(plain, message, "undelivered", "30007")
    person = subscriber(plain)
    assert person.flag_reason == "carrier_filtering_30007"
    assert person.flagged_at == plain.now
    assert person.paused_until == plain.now + timedelta(hours=24)
    assert nudges(plain, status="scheduled") == []
    assert [e["code"] for e in logs if e["event"] == "operator_alert"] == ["30007"]
    plain.tick(plain.now + timedelta(days=2))
    assert nudges(plain, status="scheduled") == [], "flagged: nothing until an operator looks"


def test_transient_30008_callback_is_recorded_without_touching_the_channel(
    plain: Harness,
) -> None:
    [message] = add_sent_sms(plain, 1)
    post_status(plain, message, "undelivered", "30008")
    assert channel(plain, "sms").status == "active"
    assert subscriber(plain).flagged_at is None
    assert nudges(plain, provider_id=str(message.provider_id))[0].error_code == "30008"


def test_an_error_code_on_a_delivered_report_changes_nothing(plain: Harness) -> None:
    [message] = add_sent_sms(plain, 1)
    post_status(plain, message, "delivered", "30005")
    assert channel(plain, "sms").status == "active"


# --- SendGrid events, signed with the sandbox's key ---------------------------------------


def email_message(harness: Harness) -> Message:
    """An email nudge that went out (the SMS is stopped, so email carries the nudges)."""
    sms = channel(harness, "sms")
    with harness.runtime.sessions() as session:
        row = Message(
            subscriber_id=sms.subscriber_id,
            channel_id=channel(harness, "email").id,
            channel="email",
            kind="activity",
            template="activity_friends_1",
            rule="activity_rotation",
            status="sent",
            scheduled_for=harness.now,
            sent_at=harness.now,
            provider="sendgrid",
            provider_id="Xm5gS0000000000000000a",
        )
        session.add(row)
        session.commit()
        session.refresh(row)
        session.expunge(row)
    return row


def post_event(harness: Harness, message: Message, event: str, **extra: Any) -> None:
    body = json.dumps(
        [
            {
                MESSAGE_ID_ARG: str(message.id),
                "email": EMAIL,
                "timestamp": int(harness.now.timestamp()),
                "event": event,
                "sg_event_id": f"{event}-{message.id}-{sorted(extra.items())}",
                "sg_message_id": f"{message.provider_id}.filter0001-1-0-0.0",
                **extra,
            }
        ]
    ).encode()
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": PLAIN_KEY.sign(stamp, body),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
    }
    assert harness.client.post(EVENTS_PATH, content=body, headers=headers).status_code == 200


def test_our_message_id_arg_is_the_one_the_sendgrid_adapter_sets() -> None:
    assert MESSAGE_ID_ARG == sendgrid_email.MESSAGE_ID_ARG


@pytest.mark.parametrize(("event", "extra"), [("deferred", {}), ("bounce", {"type": "blocked"})])
def test_deferred_and_blocked_email_are_transient(
    plain: Harness, event: str, extra: dict[str, str]
) -> None:
    message = email_message(plain)
    post_event(plain, message, event, **extra)
    assert channel(plain, "email").status == "active"
    assert count(plain, Suppression) == 0
    assert count(plain, DeliveryEvent, DeliveryEvent.event_type == event) == 1


@pytest.mark.parametrize("event", ["dropped", "bounce"])
def test_dropped_and_hard_bounce_suppress_email(plain: Harness, event: str) -> None:
    message = email_message(plain)
    post_event(plain, message, event, reason="550 5.1.1 no such user")
    email = channel(plain, "email")
    assert (email.status, email.status_reason) == ("suppressed", f"sendgrid_{event}")
    assert count(plain, Suppression, Suppression.channel == "email") == 1
    assert channel(plain, "sms").status == "active"


@pytest.mark.parametrize("event", ["spamreport", "unsubscribe", "group_unsubscribe"])
def test_email_opt_outs_stop_the_channel(plain: Harness, event: str) -> None:
    message = email_message(plain)
    post_event(plain, message, event)
    email = channel(plain, "email")
    assert (email.status, email.status_reason) == ("stopped", f"sendgrid_{event}")
    assert count(plain, Suppression, Suppression.channel == "email") == 1


def test_click_records_engagement_and_open_does_not(plain: Harness) -> None:
    message = email_message(plain)
    before = subscriber(plain).last_engaged_at
    post_event(plain, message, "open")
    [opened] = nudges(plain, id=message.id)
    assert opened.opened_at == plain.now
    assert opened.status == "delivered", "an open proves delivery"
    assert subscriber(plain).last_engaged_at == before
    plain.now += timedelta(minutes=5)
    post_event(plain, message, "click", url="https://example.org")
    [clicked] = nudges(plain, id=message.id)
    assert clicked.clicked_at == plain.now
    assert clicked.opened_at == plain.now - timedelta(minutes=5)
    assert subscriber(plain).last_engaged_at == plain.now


def test_processed_after_delivered_stays_delivered(plain: Harness) -> None:
    message = email_message(plain)
    post_event(plain, message, "delivered")
    post_event(plain, message, "processed")
    assert nudges(plain, id=message.id)[0].status == "delivered"
