"""The SendGrid email adapter through the real `sendgrid` SDK: sends, events, errors, lookups."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sendgrid.helpers.eventwebhook import EventWebhook

from service.devtools.sandbox.receiver import ReceivedRequest, WebhookReceiver
from service.devtools.sandbox.server import SandboxServer
from service.providers.base import OutboundMessage, ProviderError
from service.providers.outbox import OutboxProvider
from tests.providers.adapters.builders import (
    accepted_soon,
    closed_port,
    email,
    sendgrid_provider,
    sms,
)


def events_for(message_id: int) -> Callable[[ReceivedRequest], bool]:
    def matches(request: ReceivedRequest) -> bool:
        if request.path != "/webhooks/sendgrid/events":
            return False
        return any(e.get("steady_message_id") == str(message_id) for e in json.loads(request.body))

    return matches


# --- SendGrid -------------------------------------------------------------------------------


def test_sendgrid_send_carries_message_id_and_one_click_unsubscribe_headers(
    sandbox: SandboxServer,
) -> None:
    provider_id = sendgrid_provider(sandbox).send(email(51))

    [recorded] = sandbox.messages("sendgrid")
    assert provider_id == recorded["id"]
    assert len(provider_id) == 22
    mail = recorded["params"]
    assert mail["custom_args"] == {"steady_message_id": "51"}
    assert mail["headers"] == {
        "List-Unsubscribe": "<https://steady.example/u/token-51>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert mail["from"] == {"email": "nudges@steady.example", "name": "Weekly notes"}
    assert mail["personalizations"] == [{"to": [{"email": "pat@example.org"}]}]
    assert mail["subject"] == "This week"
    assert mail["content"] == [
        {"type": "text/plain", "value": "Plain words."},
        {"type": "text/html", "value": "<p>Plain words.</p>"},
    ]


def test_sendgrid_sender_name_defaults_to_steady(sandbox: SandboxServer) -> None:
    message = OutboundMessage(52, "email", "pat@example.org", "Hi.", subject="Hello")

    sendgrid_provider(sandbox).send(message)

    assert sandbox.messages("sendgrid")[0]["params"]["from"]["name"] == "Steady"


def test_sendgrid_events_are_signed_and_verify_with_the_sdks_event_webhook(
    sandbox: SandboxServer, receiver: WebhookReceiver
) -> None:
    provider_id = sendgrid_provider(sandbox).send(email(53))

    posts = receiver.wait_for(events_for(53), count=2)

    verifier = EventWebhook(sandbox.public_key_b64)
    events = []
    for post in posts:
        payload = post.body.decode("utf-8")
        signature = post.header("X-Twilio-Email-Event-Webhook-Signature")
        timestamp = post.header("X-Twilio-Email-Event-Webhook-Timestamp")
        assert verifier.verify_signature(payload, signature, timestamp)
        assert not verifier.verify_signature(payload + " ", signature, timestamp)
        events.extend(json.loads(payload))
    assert [e["event"] for e in events] == ["processed", "delivered"]
    for event in events:
        assert event["steady_message_id"] == "53"  # custom args at the top level
        assert event["email"] == "pat@example.org"
        assert event["sg_message_id"].startswith(provider_id + ".")
        assert isinstance(event["timestamp"], int)
        assert event["smtp-id"]
    assert len({e["sg_event_id"] for e in events}) == 2


def test_sendgrid_bounce_fault_yields_a_bounce_event(
    sandbox: SandboxServer, receiver: WebhookReceiver
) -> None:
    sandbox.add_fault(match_to="gone@example.org", sendgrid_event="bounce")

    sendgrid_provider(sandbox).send(email(54, to="gone@example.org"))

    posts = receiver.wait_for(events_for(54), count=2)
    events = [event for post in posts for event in json.loads(post.body)]
    assert [e["event"] for e in events] == ["processed", "bounce"]
    assert events[1]["steady_message_id"] == "54"
    assert events[1]["type"] == "bounce"


@pytest.mark.parametrize(
    ("status", "permanent"), [(400, True), (401, True), (413, True), (429, False), (503, False)]
)
def test_sendgrid_errors_are_classified_by_http_status(
    sandbox: SandboxServer, status: int, permanent: bool
) -> None:
    sandbox.add_fault(api="sendgrid", http_status=status, retry_after=12)

    with pytest.raises(ProviderError) as caught:
        sendgrid_provider(sandbox).send(email(55))

    assert caught.value.permanent is permanent
    assert caught.value.http_status == status
    assert caught.value.retry_after == 12.0


def test_sendgrid_timeout_is_transient(sandbox: SandboxServer) -> None:
    sandbox.add_fault(api="sendgrid", timeout=True, sleep_seconds=5)

    with pytest.raises(ProviderError) as caught:
        sendgrid_provider(sandbox, timeout=0.3).send(email(56))

    assert (caught.value.permanent, caught.value.code) == (False, "timeout")
    assert [m["subject"] for m in accepted_soon(sandbox)] == ["This week"]


def test_sendgrid_email_without_subject_is_refused_before_sending(sandbox: SandboxServer) -> None:
    with pytest.raises(ProviderError) as caught:
        sendgrid_provider(sandbox).send(OutboundMessage(57, "email", "pat@example.org", "Hi."))

    assert caught.value.permanent is True
    assert sandbox.messages() == []


def test_sendgrid_lookup_finds_the_mail_by_our_id_through_the_email_activity_api(
    sandbox: SandboxServer,
) -> None:
    provider = sendgrid_provider(sandbox)
    since = datetime.now(UTC)
    x_message_id = provider.send(email(62))

    [copy] = provider.find_accepted(email(62), since)

    assert (copy.provider_id, copy.same_content) == (x_message_id, True)
    assert provider.find_accepted(email(63), since) == []  # never sent
    # The same id to someone else is another environment's message 62, not ours.
    assert provider.find_accepted(email(62, to="lee@example.org"), since) == []


def test_sendgrid_lookup_that_cannot_reach_sendgrid_raises_rather_than_answering_none() -> None:
    provider = sendgrid_provider(closed_port(), timeout=1)

    with pytest.raises(ProviderError) as caught:
        provider.find_accepted(email(64), datetime.now(UTC))

    assert caught.value.code == "connection"


def test_outbox_lookup_never_has_a_copy_so_its_messages_are_simply_sent_again() -> None:
    assert OutboxProvider(writer=lambda _line: None).find_accepted(sms(65), datetime.now(UTC)) == []
