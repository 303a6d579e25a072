"""Provider webhooks. Order: verify the signature, drop duplicates, apply, keep raw."""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import Response
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from service.feedback import StatusReport, apply_twilio_status
from service.inbound import InboundText
from service.web.context import AppContext, app_context

router = APIRouter(prefix="/webhooks")
log = structlog.get_logger(__name__)

TWIML = "application/xml"


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
    form = {key: str(value) for key, value in (await request.form()).items()}
    if not _twilio_params_if_signed(ctx, request, form):
        log.warning("webhook_rejected", hook="twilio_inbound")
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
    return Response(str(twiml), media_type=TWIML)


@router.post("/twilio/status")
async def twilio_status(request: Request) -> Response:
    ctx = app_context(request)
    form = {key: str(value) for key, value in (await request.form()).items()}
    if not _twilio_params_if_signed(ctx, request, form):
        log.warning("webhook_rejected", hook="twilio_status")
        return Response("invalid signature", status_code=403, media_type="text/plain")
    our_id = request.query_params.get("m")
    status = form.get("MessageStatus") or form.get("SmsStatus") or ""
    sid = form.get("MessageSid") or form.get("SmsSid")
    error_code = form.get("ErrorCode") or None
    # One report per (message, status, error): Twilio's retries and our sandbox's
    # repeats share it, so the unique index drops them.
    key = f"{sid}:{status}:{error_code or ''}"
    report = StatusReport(
        provider="twilio",
        event_key=f"twilio:{key}",
        provider_id=sid,
        our_id=int(our_id) if our_id and our_id.isdigit() else None,
        status=status,
        error_code=error_code,
        payload=form,
    )
    with ctx.sessions.begin() as session:
        result = apply_twilio_status(
            session, report, ctx.settings.secret_key.get_secret_value(), ctx.clock()
        )
    log.info("twilio_status", result=result)
    return Response(status_code=200)
