"""The Steady the reconciliation tests run: Twilio and SendGrid pointed at the sandbox."""

from __future__ import annotations

import pytest

from service.devtools.sandbox.server import SandboxServer
from service.providers.sendgrid.email import SendGridEmailProvider
from tests.sending.reconcile.rows import twilio_provider
from tests.support.world import Harness, make_settings


@pytest.fixture
def harness(database_url: str, sandbox: SandboxServer) -> Harness:
    sandbox.reset()
    harness = Harness(make_settings(database_url))
    harness.runtime.providers["sms"] = twilio_provider(sandbox.url)
    harness.runtime.providers["email"] = SendGridEmailProvider(
        api_key="SG.test-key",
        from_email="nudges@steady.example",
        api_url=sandbox.url,
        timeout_seconds=0.5,
    )
    return harness
