"""Adapters pointed at the sandbox (or at nothing), and the messages and callbacks they handle."""

from __future__ import annotations

import socket
import time
from typing import Any

from service.devtools.sandbox.server import SandboxServer
from service.providers.base import OutboundMessage
from service.providers.sendgrid.email import SendGridEmailProvider
from service.providers.twilio.sms import TwilioSmsProvider

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "client-auth-token-7f3a"
FROM_NUMBER = "+15005550006"
SUBSCRIBER = "+15551234567"


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
