"""The sandbox and the webhook receiver, one per test module, cleared before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from twilio.rest import Client

from service.devtools.sandbox.receiver import WebhookReceiver
from service.devtools.sandbox.server import SandboxServer
from tests.devtools.sandbox.builders import ACCOUNT_SID, AUTH_TOKEN, TWIML


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(twiml=TWIML) as running:
        yield running


@pytest.fixture(scope="module")
def sandbox(receiver: WebhookReceiver) -> Iterator[SandboxServer]:
    with SandboxServer(
        public_url=receiver.url, auth_token="steady-side-token", callback_delay_seconds=0.01
    ) as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh(sandbox: SandboxServer, receiver: WebhookReceiver) -> None:
    sandbox.reset()
    receiver.clear()


@pytest.fixture
def twilio(sandbox: SandboxServer) -> Client:
    client = Client(ACCOUNT_SID, AUTH_TOKEN)
    client.api.base_url = sandbox.url
    return client
