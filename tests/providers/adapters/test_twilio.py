"""The Twilio SMS adapter through the real `twilio` SDK: sends, callbacks, errors, lookups."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from twilio.request_validator import RequestValidator

from service.devtools.sandbox.receiver import ReceivedRequest, WebhookReceiver
from service.devtools.sandbox.server import SandboxServer
from service.providers.base import OutboundMessage, ProviderError
from service.providers.twilio.sms import TwilioSmsProvider
from tests.providers.adapters.builders import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM_NUMBER,
    SUBSCRIBER,
    accepted_soon,
    closed_port,
    sms,
    twilio_provider,
)


def status_callback_for(sid: str) -> Callable[[ReceivedRequest], bool]:
    """Callbacks of one message only: earlier tests' callbacks may still be arriving."""

    def matches(request: ReceivedRequest) -> bool:
        return request.path.startswith("/webhooks/twilio/status") and (
            request.form().get("MessageSid") == sid
        )

    return matches


# --- Twilio ---------------------------------------------------------------------------------


def test_twilio_send_returns_the_message_sid_and_passes_the_status_callback(
    sandbox: SandboxServer, receiver: WebhookReceiver
) -> None:
    callback = f"{receiver.url}/webhooks/twilio/status?message_id=41"

    sid = twilio_provider(sandbox).send(sms(41, callback=callback))

    assert sid.startswith("SM")
    assert len(sid) == 34
    [recorded] = sandbox.messages("twilio")
    assert recorded["id"] == sid
    assert recorded["params"] == {
        "To": SUBSCRIBER,
        "From": FROM_NUMBER,
        "Body": "Breathe first.",
        "StatusCallback": callback,
    }


def test_twilio_goes_through_the_proxy_the_environment_names(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment is read once, when the client is built, and still obeyed.

    The API host does not resolve; only the proxy (here the sandbox, which serves
    an absolute-form request like any other) can deliver the request.
    """
    monkeypatch.setenv("HTTP_PROXY", sandbox.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    provider = twilio_provider("http://api.twilio.invalid")
    monkeypatch.delenv("HTTP_PROXY")  # read already: later changes do not matter

    sid = provider.send(sms(43))

    [recorded] = sandbox.messages("twilio")
    assert recorded["id"] == sid


def test_twilio_status_callbacks_arrive_in_order_signed_with_the_clients_token(
    sandbox: SandboxServer, receiver: WebhookReceiver
) -> None:
    callback = f"{receiver.url}/webhooks/twilio/status?message_id=42&attempt=1"
    sid = twilio_provider(sandbox).send(sms(42, callback=callback))

    arrived = receiver.wait_for(status_callback_for(sid), count=2)

    assert [r.form()["MessageStatus"] for r in arrived] == ["sent", "delivered"]
    validator = RequestValidator(AUTH_TOKEN)
    for request in arrived:
        form = request.form()
        assert request.path == "/webhooks/twilio/status?message_id=42&attempt=1"
        assert validator.validate(callback, form, request.header("X-Twilio-Signature"))
        assert not RequestValidator("another-token").validate(
            callback, form, request.header("X-Twilio-Signature")
        )
        assert form["MessageSid"] == form["SmsSid"] == sid
        assert form["AccountSid"] == ACCOUNT_SID
        assert (form["To"], form["From"], form["ApiVersion"]) == (
            SUBSCRIBER,
            FROM_NUMBER,
            "2010-04-01",
        )
        assert form["SmsStatus"] == form["MessageStatus"]


def test_twilio_sends_through_the_messaging_service_when_no_from_number(
    sandbox: SandboxServer,
) -> None:
    provider = TwilioSmsProvider(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        messaging_service_sid="MG" + "1" * 32,
        api_url=sandbox.url,
    )

    provider.send(sms(43))

    [recorded] = sandbox.messages("twilio")
    assert recorded["params"]["MessagingServiceSid"] == "MG" + "1" * 32
    assert "From" not in recorded["params"]


def test_twilio_invalid_number_is_a_permanent_error_carrying_code_21211(
    sandbox: SandboxServer,
) -> None:
    sandbox.add_fault(match_to="+15005550001", http_status=400, twilio_code=21211)

    with pytest.raises(ProviderError) as caught:
        twilio_provider(sandbox).send(sms(44, to="+15005550001"))

    assert caught.value.permanent is True
    assert caught.value.code == "21211"
    assert caught.value.http_status == 400
    assert sandbox.messages() == []


@pytest.mark.parametrize("code", [21610, 21614, 30007])
def test_twilio_undeliverable_codes_are_permanent(sandbox: SandboxServer, code: int) -> None:
    sandbox.add_fault(http_status=400, twilio_code=code)

    with pytest.raises(ProviderError) as caught:
        twilio_provider(sandbox).send(sms(45))

    assert (caught.value.permanent, caught.value.code) == (True, str(code))


def test_twilio_other_client_errors_are_permanent(sandbox: SandboxServer) -> None:
    sandbox.add_fault(http_status=400, twilio_code=21617)  # body too long

    with pytest.raises(ProviderError) as caught:
        twilio_provider(sandbox).send(sms(46))

    assert caught.value.permanent is True


def test_twilio_server_error_is_transient(sandbox: SandboxServer) -> None:
    sandbox.add_fault(http_status=500, times=1)
    provider = twilio_provider(sandbox)

    with pytest.raises(ProviderError) as caught:
        provider.send(sms(47))

    assert caught.value.permanent is False
    assert (caught.value.http_status, caught.value.code) == (500, "20500")
    assert provider.send(sms(47)).startswith("SM")  # the fault was used up: the retry goes


def test_twilio_rate_limit_is_transient_with_retry_after_from_the_header(
    sandbox: SandboxServer,
) -> None:
    sandbox.add_fault(http_status=429, retry_after=30)

    with pytest.raises(ProviderError) as caught:
        twilio_provider(sandbox).send(sms(48))

    assert caught.value.permanent is False
    assert caught.value.code == "20429"
    assert caught.value.retry_after == 30.0


def test_twilio_timeout_is_transient_though_the_slow_api_may_have_accepted_it(
    sandbox: SandboxServer,
) -> None:
    sandbox.add_fault(timeout=True, sleep_seconds=5)

    with pytest.raises(ProviderError) as caught:
        twilio_provider(sandbox, timeout=0.3).send(sms(49))

    assert (caught.value.permanent, caught.value.code) == (False, "timeout")
    # Like a slow real API, the sandbox accepts it once the client has hung up:
    # why a timeout is "ambiguous" and worth reconciling before a resend.
    assert [m["params"]["Body"] for m in accepted_soon(sandbox)] == ["Breathe first."]


def test_twilio_unreachable_api_is_transient() -> None:
    """No connection was made, so nothing can have been accepted: a plain retry."""
    provider = twilio_provider(closed_port(), timeout=1)

    with pytest.raises(ProviderError) as caught:
        provider.send(sms(50))

    assert (caught.value.permanent, caught.value.code) == (False, "connection")


def test_twilio_lookup_finds_the_accepted_copy_by_recipient_sender_and_body(
    sandbox: SandboxServer,
) -> None:
    provider = twilio_provider(sandbox)
    since = datetime.now(UTC) - timedelta(minutes=1)
    sid = provider.send(sms(58))
    provider.send(sms(59, to="+15559876543"))  # someone else's

    [copy] = provider.find_accepted(sms(58), since)

    assert (copy.provider_id, copy.same_content) == (sid, True)
    assert copy.accepted_at is not None
    assert copy.accepted_at >= since.replace(microsecond=0)
    assert copy.outcome in ("sent", "delivered")
    other_body = OutboundMessage(message_id=58, channel="sms", to=SUBSCRIBER, body="Other.")
    assert [c.same_content for c in provider.find_accepted(other_body, since)] == [False]
    assert provider.find_accepted(sms(58), datetime.now(UTC) + timedelta(minutes=5)) == []


def test_twilio_lookup_with_a_messaging_service_ignores_other_senders(
    sandbox: SandboxServer,
) -> None:
    service_sid = "MG" + "a" * 32
    through_service = TwilioSmsProvider(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        messaging_service_sid=service_sid,
        api_url=sandbox.url,
    )
    since = datetime.now(UTC) - timedelta(minutes=1)
    twilio_provider(sandbox).send(sms(60))  # from the plain number, not the service

    assert through_service.find_accepted(sms(60), since) == []
    sid = through_service.send(sms(60))
    assert [c.provider_id for c in through_service.find_accepted(sms(60), since)] == [sid]


def test_twilio_lookup_that_cannot_reach_twilio_raises_rather_than_answering_none() -> None:
    provider = twilio_provider(closed_port(), timeout=1)

    with pytest.raises(ProviderError) as caught:
        provider.find_accepted(sms(61), datetime.now(UTC))

    assert caught.value.code == "connection"
