"""Signup, confirmation and unsubscribe pages.

GET never changes state: link scanners and mail clients fetch links on their
own, so every change is a POST (PRODUCT.md; RFC 8058 for one-click unsubscribe).
"""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, BackgroundTasks, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from service.messages.compose import frequency_text
from service.people import subscriptions
from service.people.abuse import SignupAttempt
from service.people.zones.numbers import ZoneGuess, guess_for_number
from service.storage.models import ChannelStatus
from service.tokens import Purpose
from service.web.context import AppContext, app_context, channel_for, invalid_link
from service.web.signup_form import (
    SUBSCRIBE_BODY,
    Accepted,
    SignupForm,
    SignupInput,
    signup_input,
    validate_signup,
)

router = APIRouter()
log = structlog.get_logger(__name__)

SIGN_UP_AGAIN = "You can sign up again from the home page."
TOO_MANY_TEXT = (
    "Too many signups have come from here or for this number or address lately. "
    "Please try again later."
)
ACCEPTED_TEXT = (
    "Thanks. If that number or address can receive messages from us, a confirmation is on its "
    "way: reply YES to the text, or press the link in the email. Nothing else comes until you do."
)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
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
    shown = {key: str(values.get(key) or "") for key in ("phone", "email", "timezone", "consent")}
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


def _invalid(request: Request, ctx: AppContext, signup: SignupInput) -> Response:
    if signup.is_json:
        detail = [
            {"loc": ["body", field], "msg": message, "field": field}
            for field, message in signup.errors.items()
        ]
        return JSONResponse({"detail": detail}, 422)
    return _signup_page(request, ctx, values=signup.values, errors=signup.errors, status_code=422)


def _too_many(request: Request, ctx: AppContext, signup: SignupInput, retry_after: int) -> Response:
    headers = {"Retry-After": str(retry_after)}
    if signup.is_json:
        return JSONResponse({"detail": TOO_MANY_TEXT}, 429, headers=headers)
    return ctx.pages.TemplateResponse(
        request,
        "notice.html",
        {"title": "Please try again later", "paragraphs": [TOO_MANY_TEXT]},
        status_code=429,
        headers=headers,
    )


@router.post(
    "/subscribe",
    status_code=202,
    response_model=Accepted,
    openapi_extra=SUBSCRIBE_BODY,
    responses={
        403: {"description": "a form post from another site"},
        413: {"description": "body too large"},
        415: {"description": "neither JSON nor a form"},
        422: {"description": "a field is wrong (named in `detail`)"},
        429: {"description": "over a signup limit; see Retry-After"},
    },
)
def subscribe(
    request: Request,
    background: BackgroundTasks,
    signup: Annotated[SignupInput, Depends(signup_input)],
) -> Response:
    """Sign up by phone and/or email; 202 whether or not the address is known.

    Known and unknown addresses take the same path up to the answer: the checks
    and the limits below never look at the database, and the signup itself is
    recorded after the response has gone (a background task), so the answer's
    timing says nothing about who is already subscribed.
    """
    ctx = app_context(request)
    if signup.model is None:
        return _invalid(request, ctx, signup)
    form, errors = validate_signup(signup.model, ctx.settings.sms_country_codes)
    if form is None:
        return _invalid(request, ctx, SignupInput(signup.is_json, signup.values, errors=errors))
    now = ctx.clock()
    # The client as uvicorn resolved it: a forwarded address only from
    # FORWARDED_ALLOW_IPS (`steady web`), never a header read here.
    client = request.client.host if request.client else "unknown"
    refusal = ctx.signups.admit(SignupAttempt(client, form.phone, form.email), now)
    if refusal is not None:
        return _too_many(request, ctx, signup, refusal.retry_after)
    evidence = {
        "source": "api" if signup.is_json else "web_form",
        "ip": request.client.host if request.client else None,
        "user_agent": request.headers.get("user-agent", "")[:200],
        "consent_text_version": 1,
    }
    background.add_task(record_signup, ctx, form, evidence, now)
    # The same answer whether the address was new, known or suppressed: no enumeration.
    if signup.is_json:
        return JSONResponse({"status": "accepted", "detail": ACCEPTED_TEXT}, 202)
    return ctx.pages.TemplateResponse(
        request,
        "notice.html",
        {"title": "Check your messages", "paragraphs": [ACCEPTED_TEXT]},
        status_code=202,
    )


def record_signup(ctx: AppContext, form: SignupForm, evidence: dict[str, Any], now: Any) -> None:
    """Store the signup and wake the sender (after the response; see `subscribe`)."""
    try:
        zone = (
            ZoneGuess(form.timezone)
            if form.timezone
            else guess_for_number(form.phone, ctx.settings.default_timezone, now)
        )
        with ctx.sessions.begin() as session:
            confirmations = subscriptions.subscribe(
                session,
                subscriptions.SignupRequest(
                    phone=form.phone,
                    email=form.email,
                    timezone=zone.timezone,
                    timezone_candidates=zone.stored_candidates,
                    consent_method="web_form",
                    consent_evidence=evidence,
                    cadence_per_week=ctx.settings.default_cadence_per_week,
                ),
                ctx.hasher,
                now,
            )
            ids = [message.id for message in confirmations]
    except Exception as exc:
        # The 202 has gone; the person can sign up again. Logged for operators.
        log.error("signup_failed", error=type(exc).__name__)
        return
    ctx.waker.wake(ids)


@router.get("/confirm/{token}", response_class=HTMLResponse, include_in_schema=False)
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


@router.post("/confirm/{token}", response_class=HTMLResponse, include_in_schema=False)
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
        subscriptions.confirm_by_link(session, channel, ctx.hasher, evidence, ctx.clock())
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


@router.get("/u/{token}", response_class=HTMLResponse, include_in_schema=False)
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


@router.post("/u/{token}", response_class=HTMLResponse, include_in_schema=False)
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
            ctx.hasher,
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
