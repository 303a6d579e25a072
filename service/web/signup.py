"""Signup, confirmation and unsubscribe pages.

GET never changes state: link scanners and mail clients fetch links on their
own, so every change is a POST (PRODUCT.md; RFC 8058 for one-click unsubscribe).
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Annotated, Any
from urllib.parse import parse_qsl

import structlog
from fastapi import APIRouter, BackgroundTasks, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.addresses import (
    InvalidAddress,
    check_timezone,
    infer_timezone,
    normalise_email,
    normalise_phone,
)
from service.messages.compose import frequency_text
from service.people import subscriptions
from service.people.abuse import SignupAttempt, check_sms_number
from service.storage.models import ChannelStatus
from service.tokens import Purpose
from service.web.context import AppContext, app_context, channel_for, invalid_link

router = APIRouter()
log = structlog.get_logger(__name__)

SIGN_UP_AGAIN = "You can sign up again from the home page."
TRUE_WORDS = frozenset({"true", "on", "yes", "1"})
TOO_MANY_TEXT = (
    "Too many signups have come from here or for this number or address lately. "
    "Please try again later."
)
# A signup is three short fields: anything bigger is not one.
MAX_SIGNUP_BODY_BYTES = 4096
MAX_FIELD_LENGTH = 64
MAX_EMAIL_LENGTH = 320
ACCEPTED_TEXT = (
    "Thanks. If that number or address can receive messages from us, a confirmation is on its "
    "way: reply YES to the text, or press the link in the email. Nothing else comes until you do."
)


@dataclass(frozen=True)
class SignupForm:
    phone: str | None
    email: str | None
    timezone: str


class SignupIn(BaseModel):
    """The JSON body of `POST /subscribe` (a form post carries the same fields)."""

    model_config = ConfigDict(strict=True, extra="ignore")

    phone: str | None = Field(None, max_length=MAX_FIELD_LENGTH, description="mobile number")
    email: str | None = Field(None, max_length=MAX_EMAIL_LENGTH)
    timezone: str | None = Field(None, max_length=MAX_FIELD_LENGTH, description="IANA zone")
    consent: bool = Field(description="must be true: the person agrees to receive messages")


class Accepted(BaseModel):
    status: str
    detail: str


@dataclass
class SignupInput:
    """What the body said: the fields as typed, the model, or {field: message}."""

    is_json: bool
    values: dict[str, Any]
    model: SignupIn | None = None
    errors: dict[str, str] = dc_field(default_factory=dict)


def _consent_given(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return isinstance(value, str | int) and str(value).strip().casefold() in TRUE_WORDS


async def _read_body(request: Request) -> bytes:
    """The body, refused past MAX_SIGNUP_BODY_BYTES without reading more of it."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_SIGNUP_BODY_BYTES:
        raise HTTPException(413, "request body too large")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_SIGNUP_BODY_BYTES:
            raise HTTPException(413, "request body too large")
    return bytes(body)


def _errors_of(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors():
        loc = error.get("loc") or ()
        field = str(loc[0]) if loc and str(loc[0]) in SignupIn.model_fields else "body"
        errors.setdefault(field, str(error.get("msg", "invalid")))
    return errors


async def signup_input(request: Request) -> SignupInput:
    """Parse JSON or a urlencoded form into `SignupIn`; never a 5xx for any body."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    body = await _read_body(request)
    if content_type == "application/json":
        try:
            model = SignupIn.model_validate_json(body)
        except ValidationError as exc:
            return SignupInput(is_json=True, values={}, errors=_errors_of(exc))
        return SignupInput(is_json=True, values=model.model_dump(), model=model)
    if content_type not in ("application/x-www-form-urlencoded", ""):
        raise HTTPException(415, "send JSON or a urlencoded form")
    try:
        fields = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return SignupInput(is_json=False, values={}, errors={"body": "not a readable form"})
    values: dict[str, Any] = dict(fields)
    try:
        model = SignupIn.model_validate(
            {
                "phone": values.get("phone") or None,
                "email": values.get("email") or None,
                "timezone": values.get("timezone") or None,
                "consent": _consent_given(values.get("consent")),
            }
        )
    except ValidationError as exc:
        return SignupInput(is_json=False, values=values, errors=_errors_of(exc))
    return SignupInput(is_json=False, values=values, model=model)


def validate_signup(
    data: SignupIn, default_timezone: str, sms_countries: frozenset[str]
) -> tuple[SignupForm | None, dict[str, str]]:
    """Check a signup; returns the normalised form or {field: message}."""
    errors: dict[str, str] = {}
    phone_raw = (data.phone or "").strip()
    email_raw = (data.email or "").strip()
    timezone_raw = (data.timezone or "").strip()
    phone = email = None
    if not phone_raw and not email_raw:
        errors["phone"] = "give a mobile number or an email address"
    if phone_raw:
        try:
            phone = normalise_phone(phone_raw)
            check_sms_number(phone, sms_countries)
        except InvalidAddress as exc:
            errors["phone"] = exc.message
    if email_raw:
        try:
            email = normalise_email(email_raw)
        except InvalidAddress as exc:
            errors["email"] = exc.message
    timezone = default_timezone
    if timezone_raw:
        try:
            timezone = check_timezone(timezone_raw)
        except InvalidAddress as exc:
            errors["timezone"] = exc.message
    elif phone is not None and "phone" not in errors:
        timezone = infer_timezone(phone) or default_timezone
    if not data.consent:
        errors["consent"] = "please tick the box to agree to receive messages"
    if errors:
        return None, errors
    return SignupForm(phone=phone, email=email, timezone=timezone), {}


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


SUBSCRIBE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": SignupIn.model_json_schema()},
            "application/x-www-form-urlencoded": {"schema": SignupIn.model_json_schema()},
        },
    }
}


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
    form, errors = validate_signup(
        signup.model, ctx.settings.default_timezone, ctx.settings.sms_country_codes
    )
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
        with ctx.sessions.begin() as session:
            confirmations = subscriptions.subscribe(
                session,
                subscriptions.SignupRequest(
                    phone=form.phone,
                    email=form.email,
                    timezone=form.timezone,
                    consent_method="web_form",
                    consent_evidence=evidence,
                    cadence_per_week=ctx.settings.default_cadence_per_week,
                ),
                ctx.settings.secret_key.get_secret_value(),
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
        if channel.status == ChannelStatus.STOPPED:
            subscriptions.resume(
                session, channel, ctx.settings.secret_key.get_secret_value(), evidence, ctx.clock()
            )
        else:
            subscriptions.confirm(session, channel, evidence, ctx.clock())
        active = channel.status == ChannelStatus.ACTIVE
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
