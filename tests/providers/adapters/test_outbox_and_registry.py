"""The outbox, the choice of provider from settings, and Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from service.addresses import mask
from service.devtools.sandbox.server import SandboxServer
from service.providers.base import parse_retry_after
from service.providers.outbox import OutboxProvider
from service.providers.registry import build_providers
from service.providers.sendgrid.email import SendGridEmailProvider
from service.providers.twilio.sms import TwilioSmsProvider
from service.settings import Settings
from tests.providers.adapters.builders import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, email, sms

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
