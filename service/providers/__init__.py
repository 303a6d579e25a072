"""Providers: Twilio (SMS), SendGrid (email) and the outbox, each behind `Provider`."""

from service.providers.base import (
    Channel,
    OutboundMessage,
    Provider,
    ProviderError,
    build_providers,
)

__all__ = ["Channel", "OutboundMessage", "Provider", "ProviderError", "build_providers"]
