"""Signup, confirmation and unsubscribe pages.

GET never changes state: link scanners and mail clients fetch links on their
own, so every change is a POST (PRODUCT.md; RFC 8058 for one-click unsubscribe).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from service.addresses import (
    InvalidAddress,
    check_timezone,
    normalise_email,
    normalise_phone,
)
from service.messages.compose import frequency_text
from service.people import subscriptions, zones
from service.storage.models import ChannelStatus
from service.tokens import Purpose
from service.web.context import AppContext, app_context, channel_for, invalid_link

router = APIRouter()

SIGN_UP_AGAIN = "You can sign up again from the home page."
TRUE_WORDS = frozenset({"true", "on", "yes", "1"})
ACCEPTED_TEXT = (
    "Thanks. If that number or address can receive messages from us, a confirmation is on its "
    "way: reply YES to the text, or press the link in the email. Nothing else comes until you do."
)


@dataclass(frozen=True)
class SignupForm:
    phone: str | None
    email: str | None
    timezone: str | None  # None: not given (service.people.zones guesses it)


def _consent_given(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return isinstance(value, str | int) and str(value).strip().casefold() in TRUE_WORDS


def validate_signup(data: dict[str, Any]) -> tuple[SignupForm | None, dict[str, str]]:
    """Check a signup; returns the normalised form or {field: message}."""
    errors: dict[str, str] = {}
    phone_raw = str(data.get("phone") or "").strip()
    email_raw = str(data.get("email") or "").strip()
    timezone_raw = str(data.get("timezone") or "").strip()
    phone = email = None
    if not phone_raw and not email_raw:
        errors["phone"] = "give a mobile number or an email address"
    if phone_raw:
        try:
            phone = normalise_phone(phone_raw)
        except InvalidAddress as exc:
            errors["phone"] = exc.message
    if email_raw:
        try:
            email = normalise_email(email_raw)
        except InvalidAddress as exc:
            errors["email"] = exc.message
    timezone = None
    if timezone_raw:
        try:
            timezone = check_timezone(timezone_raw)
        except InvalidAddress as exc:
            errors["timezone"] = exc.message
    if not _consent_given(data.get("consent")):
        errors["consent"] = "please tick the box to agree to receive messages"
    if errors:
        return None, errors
    return SignupForm(phone=phone, email=email, timezone=timezone), {}


@router.get("/", response_class=HTMLResponse)
def signup_page(request: Request) -> Response:
    ctx = app_context(request)
    return _signup_page(request, ctx, values={}, errors={}, status_code=200)


def _signup_page(
    request: Request,
    ctx: AppContext,
    *,
    values: dict[str, Any],
    errors: dict[str, str],
    status_code: int,
) -> Response:
    shown = {key: values.get(key) or "" for key in ("phone", "email", "timezone", "consent")}
    return ctx.pages.TemplateResponse(
        request,
        "signup.html",
        {
            "title": "Sign up",
            "values": shown,
            "errors": errors,
            "frequency": frequency_text(ctx.settings.default_cadence_per_week),
        },
        status_code=status_code,
    )


@router.post("/subscribe")
async def subscribe(request: Request) -> Response:
    ctx = app_context(request)
    is_json = request.headers.get("content-type", "").startswith("application/json")
    if is_json:
        try:
            data = await request.json()
        except ValueError:
            return JSONResponse(
                {"detail": [{"loc": ["body"], "msg": "body is not valid JSON"}]}, 422
            )
        if not isinstance(data, dict):
            return JSONResponse(
                {"detail": [{"loc": ["body"], "msg": "expected a JSON object"}]}, 422
            )
    else:
        data = dict((await request.form()).items())
    form, errors = validate_signup(data)
    if form is None:
        if is_json:
            detail = [
                {"loc": ["body", field], "msg": message, "field": field}
                for field, message in errors.items()
            ]
            return JSONResponse({"detail": detail}, 422)
        return _signup_page(request, ctx, values=data, errors=errors, status_code=422)
    now = ctx.clock()
    zone = (
        zones.ZoneGuess(form.timezone)
        if form.timezone
        else zones.guess_for_number(form.phone, ctx.settings.default_timezone, now)
    )
    request_evidence = {
        "source": "web_form" if not is_json else "api",
        "ip": request.client.host if request.client else None,
        "user_agent": request.headers.get("user-agent", "")[:200],
        "consent_text_version": 1,
    }
    signup = subscriptions.SignupRequest(
        phone=form.phone,
        email=form.email,
        timezone=zone.timezone,
        consent_method="web_form",
        consent_evidence=request_evidence,
        cadence_per_week=ctx.settings.default_cadence_per_week,
        timezone_candidates=zone.stored_candidates,
    )
    await run_in_threadpool(_record_signup, ctx, signup, now)
    # The same answer whether the address was new, known or suppressed: no enumeration.
    if is_json:
        return JSONResponse({"status": "accepted", "detail": ACCEPTED_TEXT}, 202)
    return ctx.pages.TemplateResponse(
        request,
        "notice.html",
        {"title": "Check your messages", "paragraphs": [ACCEPTED_TEXT]},
        status_code=202,
    )


def _record_signup(ctx: AppContext, signup: subscriptions.SignupRequest, now: datetime) -> None:
    """The database side of a signup, and the wake-up; on a worker thread, off the event loop."""
    with ctx.sessions.begin() as session:
        confirmations = subscriptions.subscribe(
            session, signup, ctx.settings.secret_key.get_secret_value(), now
        )
        ids = [message.id for message in confirmations]
    ctx.waker.wake(ids)


@router.get("/confirm/{token}", response_class=HTMLResponse)
def confirm_page(request: Request, token: str) -> Response:
    ctx = app_context(request)
    with ctx.sessions() as session:
        channel = channel_for(session, ctx, Purpose.CONFIRM, token)
        if channel is None:
            return invalid_link(request, ctx, SIGN_UP_AGAIN)
    return ctx.pages.TemplateResponse(
        request,
        "action.html",
        {
            "title": "Confirm your subscription",
            "paragraphs": [
                "Press the button to start receiving Steady's messages at this address."
            ],
            "action": f"/confirm/{token}",
            "button": "Yes, confirm",
            "danger": False,
        },
    )


@router.post("/confirm/{token}", response_class=HTMLResponse)
def confirm(request: Request, token: str) -> Response:
    ctx = app_context(request)
    with ctx.sessions.begin() as session:
        channel = channel_for(session, ctx, Purpose.CONFIRM, token)
        if channel is None:
            return invalid_link(request, ctx, SIGN_UP_AGAIN)
        evidence = {
            "source": "email_link",
            "ip": request.client.host if request.client else None,
            "user_agent": request.headers.get("user-agent", "")[:200],
        }
        # A stopped channel stays stopped: after STOP only the phone's START brings it back.
        subscriptions.confirm_by_link(
            session, channel, ctx.settings.secret_key.get_secret_value(), evidence, ctx.clock()
        )
        active = channel.status == ChannelStatus.ACTIVE
    if active:
        ctx.waker.wake_planner()  # the welcome is planned now, not at the next tick
    paragraphs = (
        ["You're confirmed. Your first message arrives during your sending hours."]
        if active
        else ["This address cannot be confirmed right now."]
    )
    return ctx.pages.TemplateResponse(
        request, "notice.html", {"title": "Thank you", "paragraphs": paragraphs}
    )


@router.get("/u/{token}", response_class=HTMLResponse)
def unsubscribe_page(request: Request, token: str) -> Response:
    ctx = app_context(request)
    with ctx.sessions() as session:
        if channel_for(session, ctx, Purpose.UNSUBSCRIBE, token) is None:
            return invalid_link(request, ctx, SIGN_UP_AGAIN)
    return ctx.pages.TemplateResponse(
        request,
        "action.html",
        {
            "title": "Unsubscribe",
            "paragraphs": ["Press the button and Steady will stop sending to this address."],
            "action": f"/u/{token}",
            "button": "Unsubscribe",
            "danger": True,
        },
    )


@router.post("/u/{token}", response_class=HTMLResponse)
def unsubscribe(request: Request, token: str) -> Response:
    """RFC 8058 one-click: 200, no redirect, no cookie; the body is ignored."""
    ctx = app_context(request)
    with ctx.sessions.begin() as session:
        channel = channel_for(session, ctx, Purpose.UNSUBSCRIBE, token)
        if channel is None:
            return invalid_link(request, ctx, SIGN_UP_AGAIN)
        subscriptions.stop(
            session,
            channel,
            "unsubscribe_link",
            ctx.settings.secret_key.get_secret_value(),
            ctx.clock(),
        )
    return ctx.pages.TemplateResponse(
        request,
        "notice.html",
        {
            "title": "You're unsubscribed",
            "paragraphs": ["Nothing more will be sent to this address."],
        },
    )
