"""Provider webhooks: verify the signature (the provider's module), parse into
Steady's words, hand over to one domain function, answer."""

from __future__ import annotations

from collections import Counter
from urllib.parse import parse_qsl

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from service.messages.segments import count_segments
from service.providers.base import DeliveryReport, InboundText
from service.providers.sendgrid import webhooks as sendgrid
from service.providers.twilio import webhooks as twilio
from service.providers.twilio.codes import MESSAGE_ID_QUERY
from service.replies.grammar import interpret
from service.replies.grammar_rows import Command
from service.reporting.metrics import record_webhook
from service.sending.feedback import apply_reports
from service.web.context import AppContext, app_context

router = APIRouter(prefix="/webhooks", include_in_schema=False)
log = structlog.get_logger(__name__)


def _refused(hook: str, **why: str) -> Response:
    log.warning("webhook_rejected", hook=hook, **why)
    record_webhook(hook, "rejected")
    return Response("invalid signature", status_code=403, media_type="text/plain")


async def _twilio_form(request: Request, ctx: AppContext) -> dict[str, str] | None:
    """Twilio's form fields, or None unless Twilio signed them.

    Signed over STEADY_PUBLIC_URL + path (+ our query), never the Host header.
    Twilio posts urlencoded forms; `parse_qsl` reads them in a fraction of the
    multipart parser's time (the status callback is the hottest route).
    """
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        body = (await request.body()).decode("utf-8", errors="replace")
        form = dict(parse_qsl(body, keep_blank_values=True))
    else:
        form = {key: str(value) for key, value in (await request.form()).items()}
    url = ctx.settings.public_url + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    token = ctx.settings.twilio_auth_token
    secret = token.get_secret_value() if token is not None else None
    return form if twilio.signed(secret, url, form, request.headers) else None


# Texts that can make a channel active: the planner is woken after them.
OPT_IN_COMMANDS = frozenset({Command.CONFIRM, Command.START})


@router.post("/twilio/inbound")
async def twilio_inbound(request: Request) -> Response:
    ctx = app_context(request)
    form = await _twilio_form(request, ctx)
    if form is None:
        return _refused("twilio_inbound")
    text = twilio.inbound_text(form)
    reply = None if text is None else await run_in_threadpool(_handle_inbound, ctx, text)
    if text is not None:
        record_webhook("twilio_inbound", "replied" if reply else "silent")
    # The reply goes whatever the budget says; its segments are charged to the
    # sender after the answer is on its way, so a slow Redis never delays it.
    charge = BackgroundTask(ctx.reply_budget.charge, count_segments(reply)) if reply else None
    return Response(twilio.reply_twiml(reply), media_type=twilio.TWIML, background=charge)


def _handle_inbound(ctx: AppContext, text: InboundText) -> str | None:
    """The database side of an inbound text; runs on a worker thread, off the event loop."""
    with ctx.sessions.begin() as session:
        reply = ctx.inbound.handle(session, text, ctx.clock())
    if reply and interpret(text.body).command in OPT_IN_COMMANDS:
        ctx.waker.wake_planner()  # YES / START: the welcome goes now, not at the next tick
    return reply


@router.post("/twilio/status")
async def twilio_status(request: Request) -> Response:
    ctx = app_context(request)
    form = await _twilio_form(request, ctx)
    if form is None:
        return _refused("twilio_status")
    report = twilio.status_report(form, request.query_params.get(MESSAGE_ID_QUERY))
    if report is None:
        # Signed but says nothing we can key on: acknowledge so Twilio stops retrying.
        log.info("twilio_status", result="ignored_incomplete")
        record_webhook("twilio_status", "ignored_incomplete")
        return Response(status_code=200)
    # Committed with the other callbacks arriving meanwhile (service/web/ingest.py).
    result = await ctx.delivery_reports.submit(report)
    log.info(
        "twilio_status",
        result=result,
        message_id=report.message_id,
        status=report.event,
        code=report.error_code,
    )
    record_webhook("twilio_status", result)
    return Response(status_code=200)


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
        problem = sendgrid.signature_problem(public_key, request.headers, body)
        if problem is not None:
            return _refused("sendgrid_events", reason=problem)
    reports = sendgrid.parse_events(body)
    if reports is None:
        return Response(
            "expected a JSON array of event objects", status_code=400, media_type="text/plain"
        )
    results = Counter(await run_in_threadpool(_apply_reports, ctx, reports))
    log.info("sendgrid_events", events=len(reports), **results)
    for result, count in results.items():
        record_webhook("sendgrid_events", result, count)
    return Response(status_code=200)


def _apply_reports(ctx: AppContext, reports: list[DeliveryReport]) -> list[str]:
    """The database side of an event post; runs on a worker thread, off the event loop."""
    with ctx.sessions.begin() as session:
        return apply_reports(session, reports, ctx.hasher, ctx.clock())
