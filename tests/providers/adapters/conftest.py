"""The sandbox and the webhook receiver, one per test module, cleared before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.devtools.sandbox.receiver import WebhookReceiver
from service.devtools.sandbox.server import SandboxServer


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
