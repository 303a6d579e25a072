"""SendGrid events, signed with the sandbox's key, into suppressions and engagement."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest

from service.providers.sendgrid import email as sendgrid_email
from service.providers.sendgrid.codes import MESSAGE_ID_ARG
from service.storage.models import DeliveryEvent, Message, Suppression
from tests.sending.feedback.steady import (
    EMAIL,
    EVENTS_PATH,
    PLAIN_KEY,
    channel,
    count,
    nudges,
    subscriber,
)
from tests.support.world import Harness

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
