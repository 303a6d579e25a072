"""Provider adapters driven through the real `twilio` and `sendgrid` SDKs against the sandbox.

Nothing of ours is mocked: the SDKs make real HTTP calls over loopback to
`SandboxServer`, and signed callbacks land in a real `WebhookReceiver`.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from sendgrid.helpers.eventwebhook import EventWebhook
from twilio.request_validator import RequestValidator

from service.addresses import mask
from service.devtools.sandbox.receiver import ReceivedRequest, WebhookReceiver
from service.devtools.sandbox.server import SandboxServer
from service.providers.base import OutboundMessage, ProviderError, parse_retry_after
from service.providers.outbox import OutboxProvider
from service.providers.registry import build_providers
from service.providers.sendgrid.email import SendGridEmailProvider
from service.providers.twilio.sms import TwilioSmsProvider
from service.settings import Settings

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "client-auth-token-7f3a"
FROM_NUMBER = "+15005550006"
SUBSCRIBER = "+15551234567"
PROVIDER_ENV = (
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_FROM_NUMBER",
    "TWILIO_MESSAGING_SERVICE_SID",
    "SENDGRID_API_KEY",
    "STEADY_EMAIL_FROM",
    "STEADY_TWILIO_API_URL",
    "STEADY_SENDGRID_API_URL",
)


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def sandbox(receiver: WebhookReceiver) -> Iterator[SandboxServer]:
    with SandboxServer(public_url=receiver.url, callback_delay_seconds=0.01) as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh(sandbox: SandboxServer, receiver: WebhookReceiver) -> None:
    sandbox.reset()
    receiver.clear()


def twilio_provider(api: SandboxServer | str, timeout: float = 5.0) -> TwilioSmsProvider:
    return TwilioSmsProvider(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        from_number=FROM_NUMBER,
        api_url=api if isinstance(api, str) else api.url,
        timeout_seconds=timeout,
    )


def sendgrid_provider(api: SandboxServer | str, timeout: float = 5.0) -> SendGridEmailProvider:
    return SendGridEmailProvider(
        api_key="SG.test-key",
        from_email="nudges@steady.example",
        api_url=api if isinstance(api, str) else api.url,
        timeout_seconds=timeout,
    )


def closed_port() -> str:
    """A local URL nothing listens on: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def sms(message_id: int = 1, to: str = SUBSCRIBER, callback: str | None = None) -> OutboundMessage:
    return OutboundMessage(
        message_id=message_id, channel="sms", to=to, body="Breathe first.", status_callback=callback
    )


def email(message_id: int = 1, to: str = "pat@example.org") -> OutboundMessage:
    return OutboundMessage(
        message_id=message_id,
        channel="email",
        to=to,
        body="Plain words.",
        subject="This week",
        html="<p>Plain words.</p>",
        unsubscribe_url=f"https://steady.example/u/token-{message_id}",
        sender_name="Weekly notes",
    )


def accepted_soon(sandbox: SandboxServer, timeout: float = 3.0) -> list[dict[str, Any]]:
    """The sandbox's messages once there are any (a held request is recorded late)."""
    deadline = time.monotonic() + timeout
    while not (messages := sandbox.messages()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return messages


def status_callback_for(sid: str) -> Callable[[ReceivedRequest], bool]:
    """Callbacks of one message only: earlier tests' callbacks may still be arriving."""

    def matches(request: ReceivedRequest) -> bool:
        return request.path.startswith("/webhooks/twilio/status") and (
            request.form().get("MessageSid") == sid
        )

    return matches


def events_for(message_id: int) -> Callable[[ReceivedRequest], bool]:
    def matches(request: ReceivedRequest) -> bool:
        if request.path != "/webhooks/sendgrid/events":
            return False
        return any(e.get("steady_message_id") == str(message_id) for e in json.loads(request.body))

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


# --- Outbox, choice of provider, Retry-After ------------------------------------------------


def test_outbox_returns_outbox_id_and_masks_the_address() -> None:
    lines: list[str] = []
    outbox = OutboxProvider(writer=lines.append)

    provider_id = outbox.send(sms(58, to="+15551234567"))

    assert provider_id == "outbox-58"
    assert "+155••••••67" in lines[0]
    assert "5551234" not in lines[0]
    assert "Breathe first." in lines[0]


def test_outbox_masks_email_to_first_letter_and_domain() -> None:
    lines: list[str] = []

    OutboxProvider(writer=lines.append).send(email(59, to="pat.smith@example.org"))

    assert "p•••@example.org" in lines[0]
    assert "pat.smith" not in lines[0]
    assert mask("+1555") == "•••••"


def test_build_providers_picks_the_outbox_without_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)

    providers = build_providers(Settings(_env_file=None))

    assert providers["sms"].name == providers["email"].name == "outbox"


def test_build_providers_picks_twilio_and_sendgrid_pointed_at_the_configured_hosts(
    monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer
) -> None:
    for name in PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)
    settings = Settings(
        _env_file=None,
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_FROM_NUMBER=FROM_NUMBER,
        STEADY_TWILIO_API_URL=sandbox.url,
        SENDGRID_API_KEY="SG.test-key",
        STEADY_EMAIL_FROM="nudges@steady.example",
        STEADY_SENDGRID_API_URL=sandbox.url,
    )

    providers = build_providers(settings)

    assert isinstance(providers["sms"], TwilioSmsProvider)
    assert isinstance(providers["email"], SendGridEmailProvider)
    providers["sms"].send(sms(60))
    providers["email"].send(email(60))
    assert [m["api"] for m in sandbox.messages()] == ["twilio", "sendgrid"]


def test_retry_after_reads_seconds_and_http_dates() -> None:
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)

    assert parse_retry_after("120") == 120.0
    assert 55 <= (parse_retry_after(in_a_minute) or 0) <= 60
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


# --- a connection that breaks: before the request (retry) or after it (reconcile) ----------


@pytest.fixture
def hangs_up() -> Iterator[str]:
    """A server that reads the whole request, then closes without answering: the request
    reached the provider, so it may have been accepted."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = False

    def serve() -> None:
        while not stop:
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(2)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += connection.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                while len(body) < length:
                    body += connection.recv(65536)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop = True
    thread.join(timeout=2)
    listener.close()


def test_twilio_lost_connection_after_the_request_is_ambiguous(hangs_up: str) -> None:
    with pytest.raises(ProviderError) as caught:
        twilio_provider(hangs_up).send(sms())
    assert (caught.value.code, caught.value.permanent) == ("connection_lost", False)


def test_sendgrid_lost_connection_after_the_request_is_ambiguous(hangs_up: str) -> None:
    with pytest.raises(ProviderError) as caught:
        sendgrid_provider(hangs_up).send(email())
    assert (caught.value.code, caught.value.permanent) == ("connection_lost", False)


def test_sendgrid_refused_connection_is_a_plain_retry() -> None:
    with pytest.raises(ProviderError) as caught:
        sendgrid_provider(closed_port()).send(email())
    assert (caught.value.code, caught.value.permanent) == ("connection", False)
