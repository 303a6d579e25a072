"""The signup's input: a JSON or urlencoded body read into a strict model, then checked.

Every body gets a 4xx at worst (issue 11): the size is capped before parsing,
JSON goes through pydantic's parser (no recursion error however deep), fields
have strict types and lengths, and a form's consent words are read as a bool.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any
from urllib.parse import parse_qsl

from fastapi import HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.addresses import (
    InvalidAddress,
    check_timezone,
    normalise_email,
    normalise_phone,
)
from service.people.abuse import check_sms_number

TRUE_WORDS = frozenset({"true", "on", "yes", "1"})
# A signup is three short fields: anything bigger is not one.
MAX_SIGNUP_BODY_BYTES = 4096
MAX_FIELD_LENGTH = 64
MAX_EMAIL_LENGTH = 320


@dataclass(frozen=True)
class SignupForm:
    phone: str | None
    email: str | None
    timezone: str | None  # None: not given (service.people.zones.numbers guesses it)


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
    data: SignupIn, sms_countries: frozenset[str]
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
    timezone = None
    if timezone_raw:
        try:
            timezone = check_timezone(timezone_raw)
        except InvalidAddress as exc:
            errors["timezone"] = exc.message
    if not data.consent:
        errors["consent"] = "please tick the box to agree to receive messages"
    if errors:
        return None, errors
    return SignupForm(phone=phone, email=email, timezone=timezone), {}


SUBSCRIBE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": SignupIn.model_json_schema()},
            "application/x-www-form-urlencoded": {"schema": SignupIn.model_json_schema()},
        },
    }
}
