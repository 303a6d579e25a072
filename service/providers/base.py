"""What every provider is: one message type in, one provider id out, one error type.

Adapters (Twilio, SendGrid, the outbox) each classify their own failures into
`ProviderError.permanent`; callers decide retry or suppress from that flag alone
(STYLE.md, "One provider error type with a `permanent` flag").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from service.channels import ChannelKind

# Where an accepted copy stands, in Steady's own words (each adapter maps its provider's).
CopyOutcome = Literal["sent", "delivered", "undelivered", "failed"]


@dataclass(frozen=True)
class OutboundMessage:
    """One message ready for a provider; ids only travel further than this."""

    message_id: int
    channel: ChannelKind
    to: str
    body: str
    subject: str | None = None
    html: str | None = None
    status_callback: str | None = None
    unsubscribe_url: str | None = None
    sender_name: str | None = None


class ProviderError(Exception):
    """A send that did not go through.

    `permanent` means retrying the same message cannot succeed (bad number,
    unsubscribed recipient, rejected request); otherwise retry, no sooner than
    `retry_after` seconds when the provider said so. `code` is the provider's own
    error code as a string (a Twilio code such as "21211"), or one of ours:
    "timeout" and "connection" when no answer came back, so the request may or
    may not have been accepted.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        code: str | None = None,
        retry_after: float | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code
        self.retry_after = retry_after
        self.http_status = http_status

    def __repr__(self) -> str:
        return (
            f"ProviderError({self.args[0]!r}, permanent={self.permanent}, code={self.code!r}, "
            f"retry_after={self.retry_after!r}, http_status={self.http_status!r})"
        )


class Provider(Protocol):
    """Sends one message; returns the provider's id for it or raises `ProviderError`."""

    name: str

    def send(self, message: OutboundMessage) -> str: ...


@dataclass(frozen=True)
class AcceptedCopy:
    """A message the provider accepted that may be the one whose answer we never got.

    `same_content` is True when it is ours beyond doubt (SendGrid: our id in its
    custom args) or looks exactly like it (Twilio: same recipient, sender and
    body). False: it went to the same recipient in the same window but is not
    recognisably this message; the reconciler treats that as "cannot tell".
    """

    provider_id: str
    same_content: bool
    outcome: CopyOutcome = "sent"
    accepted_at: datetime | None = None
    error_code: str | None = None


@runtime_checkable
class AcceptanceLookup(Protocol):
    """A provider that can say whether it accepted a message (reconciliation).

    Returns the candidate copies accepted on or after `since`, in any order, or
    raises `ProviderError` when it cannot tell (the provider is down): the
    caller must then keep the message `unknown`, never guess.
    """

    def find_accepted(self, message: OutboundMessage, since: datetime) -> list[AcceptedCopy]: ...


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (RFC 9110 §10.2.3): seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from datetime import UTC, datetime
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
