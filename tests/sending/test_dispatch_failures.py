"""Dispatch through the real Twilio SDK: retries, permanent failures, timeouts and leases."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.devtools.sandbox.server import SandboxServer
from service.providers.twilio.sms import TwilioSmsProvider
from service.sending.claims import Outcome, claim_due, record_outcomes
from tests.sending.dispatch_helpers import PHONE, confirmation
from tests.support.world import PUBLIC_URL, TEST_TWILIO_TOKEN, Harness, make_settings


@pytest.fixture
def harness(database_url: str, sandbox: SandboxServer) -> Harness:
    sandbox.reset()
    harness = Harness(make_settings(database_url))
    harness.runtime.providers["sms"] = TwilioSmsProvider(
        account_sid="AC" + "1" * 32,
        auth_token=TEST_TWILIO_TOKEN,
        from_number="+15005550006",
        api_url=sandbox.url,
        timeout_seconds=0.5,
    )
    response = harness.client.post("/subscribe", json={"phone": PHONE, "consent": True})
    assert response.status_code == 202
    return harness


def test_confirmation_goes_through_the_twilio_sdk_with_status_callback(
    harness: Harness, sandbox: SandboxServer
) -> None:
    harness.tick()
    [sent] = sandbox.messages("twilio")
    message = confirmation(harness)
    assert message.status == "sent"
    assert message.provider_id == sent["id"]
    assert sent["params"]["StatusCallback"] == f"{PUBLIC_URL}/webhooks/twilio/status?m={message.id}"


def test_server_error_is_retried_after_backoff_and_sent_once(
    harness: Harness, sandbox: SandboxServer
) -> None:
    sandbox.add_fault(http_status=500, times=1)
    harness.tick()
    message = confirmation(harness)
    assert (message.status, message.attempts) == ("scheduled", 1)
    assert message.scheduled_for >= harness.now + timedelta(minutes=1)
    harness.tick(harness.now + timedelta(seconds=30))
    assert sandbox.messages("twilio") == []
    harness.tick(harness.now + timedelta(minutes=2))
    assert confirmation(harness).status == "sent"
    assert len(sandbox.messages("twilio")) == 1


def test_retry_after_from_429_is_honoured(harness: Harness, sandbox: SandboxServer) -> None:
    sandbox.add_fault(http_status=429, retry_after=600, times=1)
    harness.tick()
    message = confirmation(harness)
    assert message.status == "scheduled"
    assert message.scheduled_for >= harness.now + timedelta(seconds=600)


def test_three_transient_failures_fail_the_message(
    harness: Harness, sandbox: SandboxServer
) -> None:
    sandbox.add_fault(http_status=503, times=3)
    for _ in range(3):
        harness.tick(harness.now + timedelta(minutes=16))
    message = confirmation(harness)
    assert (message.status, message.attempts) == ("failed", 3)
    assert sandbox.messages("twilio") == []


def test_invalid_number_fails_permanently_without_retry(
    harness: Harness, sandbox: SandboxServer
) -> None:
    sandbox.add_fault(http_status=400, twilio_code=21211)
    harness.tick()
    harness.tick(harness.now + timedelta(minutes=30))
    message = confirmation(harness)
    assert (message.status, message.error_code, message.attempts) == ("failed", "21211", 1)


def test_timeout_is_never_blindly_resent(harness: Harness, sandbox: SandboxServer) -> None:
    # No answer within the client's timeout: the API may have accepted it.
    sandbox.add_fault(timeout=True, sleep_seconds=2, times=1)
    harness.tick()
    assert confirmation(harness).status == "unknown"
    harness.tick(harness.now + timedelta(seconds=1))  # not settled yet: never resent meanwhile
    assert confirmation(harness).status == "unknown"
    # Reconciliation asks Twilio, finds the copy it accepted, and settles the row on it.
    harness.tick(harness.now + timedelta(hours=1))
    message = confirmation(harness)
    [copy] = sandbox.messages("twilio")
    assert (message.status, message.attempts, message.provider_id) == ("sent", 1, copy["id"])


def test_a_claim_whose_worker_died_becomes_unknown_after_its_lease(
    harness: Harness, sandbox: SandboxServer
) -> None:
    lease = timedelta(seconds=harness.settings.send_lease_seconds)
    with harness.runtime.sessions() as session:
        # A worker claims the batch, commits `sending`, and dies before sending.
        assert claim_due(session, harness.now, 10, lease) == [confirmation(harness).id]
        session.commit()
    harness.tick(harness.now + timedelta(seconds=10))
    assert confirmation(harness).status == "sending"
    harness.tick(harness.now + lease)
    assert confirmation(harness).status == "unknown"
    assert sandbox.messages("twilio") == []


def test_a_send_recorded_after_its_lease_ran_out_is_still_sent(
    harness: Harness, sandbox: SandboxServer
) -> None:
    """The worker was slow, not dead: its lease ran out (`unknown`), then its result came."""
    lease = timedelta(seconds=harness.settings.send_lease_seconds)
    message = confirmation(harness)
    with harness.runtime.sessions() as session:
        assert claim_due(session, harness.now, 10, lease) == [message.id]
        session.commit()
    harness.runtime.dispatcher.housekeeping(harness.now + lease + timedelta(seconds=1))
    assert confirmation(harness).status == "unknown"
    with harness.runtime.sessions() as session:
        record_outcomes(
            session.connection(),
            [
                Outcome(
                    message_id=message.id,
                    subscriber_id=message.subscriber_id,
                    channel="sms",
                    kind=message.kind,
                    template=message.template,
                    rule=message.rule,
                    status="sent",
                    provider_id="SM" + "1" * 32,
                    detail="twilio",
                    at=harness.now + timedelta(seconds=2),
                )
            ],
            harness.now + lease + timedelta(seconds=5),
        )
        session.commit()
    settled = confirmation(harness)
    assert (settled.status, settled.provider_id) == ("sent", "SM" + "1" * 32)
