"""Builds the configured providers (INTERFACE.md §1); `base` knows no implementation."""

from __future__ import annotations

from service.channels import ChannelKind
from service.providers.base import Provider
from service.providers.outbox import OutboxProvider
from service.settings import Settings


def build_providers(settings: Settings) -> dict[ChannelKind, Provider]:
    """Pick each channel's provider from the settings (INTERFACE.md §1).

    Twilio when its account SID and auth token are set, SendGrid when its API key
    is set; otherwise that channel goes to the outbox, so Steady runs on a bare
    machine. The SDK modules are imported only when their provider is chosen.
    """
    providers: dict[ChannelKind, Provider] = {}
    if settings.twilio_enabled:
        from service.providers.twilio.sms import TwilioSmsProvider

        providers[ChannelKind.SMS] = TwilioSmsProvider.from_settings(settings)
    else:
        providers[ChannelKind.SMS] = OutboxProvider()
    if settings.sendgrid_enabled:
        from service.providers.sendgrid.email import SendGridEmailProvider

        providers[ChannelKind.EMAIL] = SendGridEmailProvider.from_settings(settings)
    else:
        providers[ChannelKind.EMAIL] = OutboxProvider()
    return providers
