"""What every provider is: one message type in, one provider id out, one error type,
and the neutral reports its webhooks are read into.

Adapters (Twilio, SendGrid, the outbox) each classify their own failures into
`ProviderError.permanent`; callers decide retry or suppress from that flag alone
(STYLE.md, "One provider error type with a `permanent` flag"). What a provider's
error code or event says about an address is a `Cause` in Steady's own words, so
no part outside a provider's folder ever reads a provider code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Protocol, runtime_checkable

from service.channels import ChannelKind

# Where an accepted copy stands, in Steady's own words (each adapter maps its provider's).
CopyOutcome = Literal["sent", "delivered", "undelivered", "failed"]
# Where a delivery report says a message is: the message statuses a provider can
# report (`service.storage.models.MessageStatus` values; a test keeps them so).
DeliveryStatus = Literal["sending", "sent", "delivered", "undelivered", "failed", "expired"]


class DeliveryReason(StrEnum):
    """What a provider's error or event says about the address, in Steady's words."""

    OPTED_OUT = "opted_out"  # the person opted out at the provider or carrier: their STOP
    SPAM = "spam"  # the person marked a message as spam: an opt-out too
    UNREACHABLE = "unreachable"  # the address can never receive from us
    ABSENT = "absent"  # not reachable now (a phone off): only a run of these means gone
    FILTERED = "filtered"  # the carrier filtered the message as unwanted
    SENDER_BLOCKED = "sender_blocked"  # our sender's registration or caps, not the person
    TRANSIENT = "transient"  # a temporary block: recorded, nothing to do


@dataclass(frozen=True)
class Cause:
    """Why a message did not arrive: the neutral reason and the provider's own detail.

    `label` is how records name it (a channel's `status_reason`, a flag reason),
    chosen by the provider's adapter; `code` is the provider's raw error code,
    kept as detail (a run of `ABSENT` failures is counted by its code).
    """

    reason: DeliveryReason
    label: str
    code: str | None = None


class Engagement(StrEnum):
    """A sign the person read a message (email opens and clicks)."""

    OPENED = "opened"
    CLICKED = "clicked"


@dataclass(frozen=True)
class DeliveryReport:
    """One status callback or event from a provider, read into Steady's words.

    Built by the provider's webhook parser after the signature was checked;
    `service.sending.feedback` applies it without knowing which provider sent it.
    """

    provider: str  # the provider's name, as recorded with the report
    channel: ChannelKind
    event_key: str  # unique per report: a repeat of it is dropped as a duplicate
    event: str  # the provider's own name for what happened, kept for the record
    message_id: int | None  # ours, when the provider echoed it back
    provider_id: str | None  # the provider's id for the message
    status: DeliveryStatus | None  # where the message is now; None says nothing about that
    cause: Cause | None = None  # why it did not arrive, when it did not
    engagement: Engagement | None = None
    error_code: str | None = None  # the provider's raw code, kept as detail
    # The address the provider says it was for; when given, it must be the
    # message's own (an unsigned event must not reach someone else's message).
    recipient: str | None = None
    occurred_at: datetime | None = None  # the provider's time for it, when it gave one
    payload: dict[str, Any] = field(default_factory=dict)  # the raw report, kept as is


@dataclass(frozen=True)
class InboundText:
    """A text a person sent to our number, as the provider handed it over."""

    provider_id: str | None
    sender: str  # E.164
    body: str


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
    # How long the provider may hold it before it is late (Twilio's ValidityPeriod);
    # None: the provider's default. Set by the dispatcher for nudges.
    validity_seconds: int | None = None


class ProviderError(Exception):
    """A send that did not go through.

    `permanent` means retrying the same message cannot succeed (bad number,
    unsubscribed recipient, rejected request); otherwise retry, no sooner than
    `retry_after` seconds when the provider said so. `code` is the provider's own
    error code as a string (a Twilio code such as "21211"), or one of ours:
    "timeout" and "connection" when no answer came back, so the request may or
    may not have been accepted. `cause` is what the error says about the address,
    when it says anything (the same feedback a status callback would give).
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        code: str | None = None,
        retry_after: float | None = None,
        http_status: int | None = None,
        cause: Cause | None = None,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code
        self.retry_after = retry_after
        self.http_status = http_status
        self.cause = cause

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
    cause: Cause | None = None  # why it did not arrive, for a failed copy


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
