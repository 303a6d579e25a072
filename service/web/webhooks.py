"""Provider webhooks. Order: verify the signature, drop duplicates, apply, keep raw."""

from __future__ import annotations

import binascii
import json
import time
from collections import Counter
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

import structlog
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sendgrid.helpers.eventwebhook import EventWebhook
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from service.replies.inbound import InboundText
from service.reporting.metrics import record_webhook
from service.sending.feedback import StatusReport, apply_sendgrid_event
from service.storage.models import parse_row_id
from service.web.context import AppContext, app_context

router = APIRouter(prefix="/webhooks", include_in_schema=False)
log = structlog.get_logger(__name__)

TWIML = "application/xml"
SENDGRID_SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
# A signed event batch older than this is refused as a possible replay; SendGrid
# signs each delivery attempt afresh, so its own retries are never this old.
SENDGRID_MAX_SIGNATURE_AGE_SECONDS = 10 * 60
# How far ahead of our clock a signature may be dated (clock skew, no more).
SENDGRID_MAX_CLOCK_SKEW_SECONDS = 5 * 60


def _twilio_params_if_signed(ctx: AppContext, request: Request, form: dict[str, str]) -> bool:
    """Check X-Twilio-Signature against STEADY_PUBLIC_URL + path (+ our query).

    Never against the Host header: behind a TLS-terminating proxy the request
    we see is not the URL Twilio signed, and Host is whatever the client says.
    """
    token = ctx.settings.twilio_auth_token
    signature = request.headers.get("x-twilio-signature")
    if token is None or not signature:
        return False
    url = ctx.settings.public_url + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    return bool(RequestValidator(token.get_secret_value()).validate(url, form, signature))


@router.post("/twilio/inbound")
async def twilio_inbound(request: Request) -> Response:
    ctx = app_context(request)
    form = await _twilio_form(request)
    if not _twilio_params_if_signed(ctx, request, form):
        log.warning("webhook_rejected", hook="twilio_inbound")
        record_webhook("twilio_inbound", "rejected")
        return Response("invalid signature", status_code=403, media_type="text/plain")
    sender = form.get("From", "")
    if not sender:
        return Response(str(MessagingResponse()), media_type=TWIML)
    text = InboundText(provider_id=form.get("MessageSid"), sender=sender, body=form.get("Body", ""))
    with ctx.sessions.begin() as session:
        reply = ctx.inbound.handle(session, text, ctx.clock())
    twiml = MessagingResponse()
    if reply:
        twiml.message(reply)
    record_webhook("twilio_inbound", "replied" if reply else "silent")
    return Response(str(twiml), media_type=TWIML)


async def _twilio_form(request: Request) -> dict[str, str]:
    """Twilio's form fields. Twilio posts urlencoded forms; `parse_qsl` reads them in a
    fraction of the multipart parser's time (the status callback is the hottest route)."""
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        body = (await request.body()).decode("utf-8", errors="replace")
        return dict(parse_qsl(body, keep_blank_values=True))
    return {key: str(value) for key, value in (await request.form()).items()}


@router.post("/twilio/status")
async def twilio_status(request: Request) -> Response:
    ctx = app_context(request)
    form = await _twilio_form(request)
    if not _twilio_params_if_signed(ctx, request, form):
        log.warning("webhook_rejected", hook="twilio_status")
        record_webhook("twilio_status", "rejected")
        return Response("invalid signature", status_code=403, media_type="text/plain")
    our_id = request.query_params.get("m")
    status = form.get("MessageStatus") or form.get("SmsStatus") or ""
    sid = form.get("MessageSid") or form.get("SmsSid")
    error_code = form.get("ErrorCode") or None
    if not sid or not status:
        # Signed but says nothing we can key on: acknowledge so Twilio stops retrying.
        log.info("twilio_status", result="ignored_incomplete")
        record_webhook("twilio_status", "ignored_incomplete")
        return Response(status_code=200)
    # One report per (message, status, error): Twilio's retries and our sandbox's
    # repeats share it, so the unique index drops them.
    report = StatusReport(
        provider="twilio",
        event_key=f"twilio:{sid}:{status}:{error_code or ''}"[:128],
        provider_id=sid,
        our_id=parse_row_id(our_id),
        status=status,
        error_code=error_code,
        payload=form,
    )
    result = await ctx.twilio_statuses.submit(report)
    log.info(
        "twilio_status",
        result=result,
        message_id=report.our_id,
        status=status,
        code=error_code,
    )
    record_webhook("twilio_status", result)
    return Response(status_code=200)


@lru_cache(maxsize=4)
def _sendgrid_public_key(public_key_b64: str) -> EllipticCurvePublicKey:
    """The verification key, parsed once (SendGrid shows it as base64 DER)."""
    key: EllipticCurvePublicKey = EventWebhook().convert_public_key_to_ecdsa(public_key_b64)
    return key


def sendgrid_signature_problem(public_key_b64: str, request: Request, body: bytes) -> str | None:
    """Why a SendGrid event post is refused, or None if its signature is good and fresh.

    The signature covers the timestamp header plus the raw body bytes: verify
    before parsing, since re-serialised JSON would not match. Freshness is judged
    by the wall clock, as SendGrid's timestamp is, not by the service's settable clock.
    """
    signature = request.headers.get(SENDGRID_SIGNATURE_HEADER)
    timestamp = request.headers.get(SENDGRID_TIMESTAMP_HEADER)
    if not signature or not timestamp:
        return "missing_signature"
    if not timestamp.isdigit():
        return "bad_timestamp"
    try:
        key = _sendgrid_public_key(public_key_b64)
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
    if age > SENDGRID_MAX_SIGNATURE_AGE_SECONDS:
        return "signature_too_old"
    if age < -SENDGRID_MAX_CLOCK_SKEW_SECONDS:
        return "signature_in_future"
    return None


@router.post("/sendgrid/events")
async def sendgrid_events(request: Request) -> Response:
    """SendGrid's event webhook: a JSON array of events.

    With SENDGRID_WEBHOOK_PUBLIC_KEY set, only signed, fresh posts are accepted
    (403 otherwise). Without it events are accepted unsigned, for development
    and the outbox; each event must then still name the message's own address.
    """
    ctx = app_context(request)
    body = await request.body()
    public_key = ctx.settings.sendgrid_webhook_public_key
    if public_key:
        problem = sendgrid_signature_problem(public_key, request, body)
        if problem is not None:
            log.warning("webhook_rejected", hook="sendgrid_events", reason=problem)
            record_webhook("sendgrid_events", "rejected")
            return Response("invalid signature", status_code=403, media_type="text/plain")
    events = _parse_events(body)
    if events is None:
        return Response(
            "expected a JSON array of event objects", status_code=400, media_type="text/plain"
        )
    results: Counter[str] = Counter()
    with ctx.sessions.begin() as session:
        secret = ctx.settings.secret_key.get_secret_value()
        now = ctx.clock()
        for event in events:
            results[apply_sendgrid_event(session, event, secret, now)] += 1
    log.info("sendgrid_events", events=len(events), **results)
    for result, count in results.items():
        record_webhook("sendgrid_events", result, count)
    return Response(status_code=200)


def _parse_events(body: bytes) -> list[dict[str, Any]] | None:
    try:
        events = json.loads(body)
    except ValueError:
        return None
    if not isinstance(events, list) or not all(isinstance(event, dict) for event in events):
        return None
    return events
