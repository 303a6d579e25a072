"""SendGrid's event webhook: the ECDSA signature check and the events, as reports.

The route (`service.web.webhooks`) hands over the raw body and headers; what
comes back is in Steady's words (`DeliveryReport`).
"""

from __future__ import annotations

import binascii
import hashlib
import json
import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import structlog
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from sendgrid.helpers.eventwebhook import EventWebhook

from service.channels import ChannelKind
from service.ids import parse_row_id
from service.providers.base import DeliveryReport
from service.providers.sendgrid.codes import (
    ENGAGEMENT,
    MESSAGE_ID_ARG,
    PROVIDER,
    STATUSES,
    cause_of,
)

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
# A signed event batch older than this is refused as a possible replay; SendGrid
# signs each delivery attempt afresh, so its own retries are never this old.
MAX_SIGNATURE_AGE_SECONDS = 10 * 60
# How far ahead of our clock a signature may be dated (clock skew, no more).
MAX_CLOCK_SKEW_SECONDS = 5 * 60
EVENT_KEY_LENGTH = 128  # DeliveryEvent.event_key


@lru_cache(maxsize=4)
def _public_key(public_key_b64: str) -> EllipticCurvePublicKey:
    """The verification key, parsed once (SendGrid shows it as base64 DER)."""
    key: EllipticCurvePublicKey = EventWebhook().convert_public_key_to_ecdsa(public_key_b64)
    return key


def signature_problem(public_key_b64: str, headers: Mapping[str, str], body: bytes) -> str | None:
    """Why an event post is refused, or None if its signature is good and fresh.

    The signature covers the timestamp header plus the raw body bytes: verify
    before parsing, since re-serialised JSON would not match. Freshness is judged
    by the wall clock, as SendGrid's timestamp is, not by the service's settable clock.
    """
    signature = headers.get(SIGNATURE_HEADER)
    timestamp = headers.get(TIMESTAMP_HEADER)
    if not signature or not timestamp:
        return "missing_signature"
    if not (timestamp.isascii() and timestamp.isdigit()):
        return "bad_timestamp"
    try:
        key = _public_key(public_key_b64)
    except ValueError:
        log.error("sendgrid_webhook_key_invalid")
        return "bad_key_configured"
    try:
        payload = body.decode("utf-8")
        valid = EventWebhook().verify_signature(payload, signature, timestamp, key)
    except (UnicodeDecodeError, binascii.Error, ValueError):
        valid = False
    if not valid:
        return "bad_signature"
    age = time.time() - int(timestamp)
    if age > MAX_SIGNATURE_AGE_SECONDS:
        return "signature_too_old"
    if age < -MAX_CLOCK_SKEW_SECONDS:
        return "signature_in_future"
    return None


def parse_events(body: bytes) -> list[DeliveryReport] | None:
    """The posted events as reports; None unless the body is a JSON array of objects.

    Events are kept as their raw payload (a JSON column), so only JSON every
    database stores is taken: no NaN or Infinity (PostgreSQL's `json` refuses
    them), no number too big for a float, and no nesting deeper than
    MAX_EVENT_DEPTH (SendGrid's events are flat; a deep one is no event of theirs
    and must not reach the parser's or the serialiser's recursion limit).
    """
    try:
        events = json.loads(body, parse_constant=_no_constant, parse_float=_finite_float)
    except (ValueError, RecursionError):
        return None
    if not isinstance(events, list) or not all(isinstance(event, dict) for event in events):
        return None
    if not all(_shallow(event) for event in events):
        return None
    return [event_report(event) for event in events]


# An event object, its values, and lists or objects inside those: SendGrid nests no deeper.
MAX_EVENT_DEPTH = 8


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON a database stores")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def _shallow(event: dict[str, Any]) -> bool:
    """True when no value inside `event` is nested deeper than MAX_EVENT_DEPTH."""
    stack: list[tuple[Any, int]] = [(event, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_EVENT_DEPTH:
            return False
        if isinstance(value, dict):
            stack.extend((inner, depth + 1) for inner in value.values())
        elif isinstance(value, list):
            stack.extend((inner, depth + 1) for inner in value)
    return True


def event_report(event: dict[str, Any]) -> DeliveryReport:
    """One event as a report. Our id comes from `custom_args` (copied onto the event)."""
    kind = str(event.get("event") or "")
    bounce_type = str(event.get("type") or "") or None
    return DeliveryReport(
        provider=PROVIDER,
        channel=ChannelKind.EMAIL,
        event_key=event_key(event),
        event=kind or "unknown",
        message_id=parse_row_id(event.get(MESSAGE_ID_ARG)),
        provider_id=_x_message_id(event),
        status=STATUSES.get(kind),
        cause=cause_of(kind, bounce_type),
        engagement=ENGAGEMENT.get(kind),
        error_code=str(event.get("status") or "") or None,
        recipient=str(event.get("email") or "").strip(),
        occurred_at=_event_time(event),
        payload=event,
    )


def event_key(event: dict[str, Any]) -> str:
    """`sendgrid:<sg_event_id>`; a hash of the event when SendGrid gave no id."""
    event_id = str(event.get("sg_event_id") or "")
    if not event_id:
        canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), default=str)
        event_id = "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    key = f"sendgrid:{event_id}"
    if len(key) > EVENT_KEY_LENGTH:
        key = "sendgrid:sha256:" + hashlib.sha256(event_id.encode("utf-8")).hexdigest()
    return key


def _x_message_id(event: dict[str, Any]) -> str | None:
    """SendGrid's `sg_message_id` is the send's X-Message-Id, a dot, then a filter suffix."""
    sg_message_id = str(event.get("sg_message_id") or "")
    prefix = sg_message_id.split(".", 1)[0]
    return prefix or None


def _event_time(event: dict[str, Any]) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(event["timestamp"]), UTC)
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return None
