"""Providers: Twilio (SMS), SendGrid (email) and the outbox, each behind `Provider`."""

from service.providers.base import (
    AcceptanceLookup,
    AcceptedCopy,
    Channel,
    OutboundMessage,
    Provider,
    ProviderError,
    build_providers,
)

__all__ = [
    "AcceptanceLookup",
    "AcceptedCopy",
    "Channel",
    "OutboundMessage",
    "Provider",
    "ProviderError",
    "build_providers",
]
