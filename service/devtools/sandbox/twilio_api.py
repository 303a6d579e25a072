"""The sandbox's stand-in for Twilio's Messages API (2010-04-01), on Twilio's wire format.

The real `twilio` SDK talks to it unchanged: form-encoded creates answered 201 with a
Message resource, Twilio's error JSON (`code`, `message`, `more_info`, `status`),
list pages with `next_page_uri`, and status callbacks signed with
`X-Twilio-Signature` under the auth token the client itself used.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import os
import time
import uuid
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped, unused-ignore]

from service.devtools.sandbox.callbacks import CallbackSender, OutgoingPost, Stage
from service.devtools.sandbox.state import FaultRule, SandboxMessage, SandboxState
from service.messages.segments import count_segments

API_VERSION = "2010-04-01"
SANDBOX_PHONE_NUMBER = "+15005550006"  # Twilio's own "valid sender" test number
HOLD_POLL_SECONDS = 0.05
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000

# Twilio's messages for the error codes the sandbox produces itself.
TWILIO_ERROR_MESSAGES = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    20503: "Service Unavailable",
    21211: "The 'To' number is not a valid phone number.",
    21602: "Message body is required.",
    21603: "The 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    21624: "Validity period can only be set to integers between 1 and 36,000 seconds.",
}
# Twilio's ValidityPeriod range (https://www.twilio.com/docs/api/errors/90007).
VALIDITY_PERIOD_RANGE = (1, 36_000)
DEFAULT_CODE_FOR_STATUS = {401: 20003, 404: 20404, 429: 20429, 500: 20500, 503: 20503}

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def rfc2822(timestamp: float | None) -> str | None:
    """Twilio's date format, `Mon, 16 Aug 2010 03:45:01 +0000`, independent of locale."""
    return None if timestamp is None else _rfc2822_second(int(timestamp))


@functools.lru_cache(maxsize=4)
def _rfc2822_second(second: int) -> str:
    t = time.gmtime(second)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
    )


def twilio_error(
    status: int,
    code: int | None = None,
    message: str | None = None,
    retry_after: float | None = None,
) -> Response:
    code = code or DEFAULT_CODE_FOR_STATUS.get(status, 20500 if status >= 500 else 21211)
    payload = {
        "code": code,
        "message": message or TWILIO_ERROR_MESSAGES.get(code, "Error"),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else None
    return JSONResponse(payload, status_code=status, headers=headers)


def basic_auth_password(request: Request) -> str | None:
    """The auth token from `Authorization: Basic base64(sid:token)`; None when absent."""
    return _password_from_header(request.headers.get("authorization", ""))


@functools.lru_cache(maxsize=64)  # a client sends the same header every time
def _password_from_header(header: str) -> str | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return password if sep and user and password else None


async def hold(request: Request, seconds: float) -> None:
    """Answer late, as a stuck API would; stop early once the client has hung up."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await request.is_disconnected():
            return
        await asyncio.sleep(HOLD_POLL_SECONDS)


def message_resource(message: SandboxMessage) -> dict[str, Any]:
    uri = f"/{API_VERSION}/Accounts/{message.account_sid}/Messages/{message.id}"
    return {
        "account_sid": message.account_sid,
        "api_version": API_VERSION,
        "body": message.body,
        "date_created": rfc2822(message.received_at),
        "date_sent": rfc2822(message.date_sent),
        "date_updated": rfc2822(message.date_updated or message.received_at),
        "direction": "outbound-api",
        "error_code": message.error_code,
        "error_message": None,
        "from": message.from_,
        "messaging_service_sid": message.messaging_service_sid,
        "num_media": "0",
        "num_segments": str(message.num_segments),
        "price": None,
        "price_unit": "USD",
        "sid": message.id,
        "status": message.status,
        "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
        "to": message.to,
        "uri": f"{uri}.json",
    }


def _status_stage(
    message: SandboxMessage, status: str, callback: tuple[str, str] | None, error_code: str | None
) -> Stage:
    """Move the message to `status`; build the signed callback when one was asked for."""

    def run() -> OutgoingPost | None:
        now = time.time()
        message.status = status
        message.date_updated = now
        if status == "sent":
            message.date_sent = now
        if error_code is not None:
            message.error_code = int(error_code)
        if callback is None:
            return None
        url, auth_token = callback
        form = {
            "SmsSid": message.id,
            "SmsStatus": status,
            "MessageStatus": status,
            "To": message.to,
            "MessageSid": message.id,
            "AccountSid": message.account_sid,
            "From": message.from_ or SANDBOX_PHONE_NUMBER,
            "ApiVersion": API_VERSION,
        }
        if message.messaging_service_sid:
            form["MessagingServiceSid"] = message.messaging_service_sid
        if error_code is not None:
            form["ErrorCode"] = error_code
        # Signed over the URL exactly as given, query string included.
        signature = RequestValidator(auth_token).compute_signature(url, form)
        return OutgoingPost(
            url,
            urlencode(form).encode("utf-8"),
            {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature,
                "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
                "User-Agent": "TwilioProxy/1.1",
            },
        )

    return run


def _lifecycle(
    message: SandboxMessage, fault: FaultRule | None, callback: tuple[str, str] | None
) -> list[Stage]:
    if fault is not None and fault.callback_status == "failed":
        return [_status_stage(message, "failed", callback, fault.error_code)]
    final_error = fault.error_code if fault is not None else None
    final = "undelivered" if final_error else "delivered"
    return [
        _status_stage(message, "sent", callback, None),
        _status_stage(message, final, callback, final_error),
    ]


def _missing_parameter_code(params: dict[str, str]) -> int | None:
    """Twilio's error code for a create without To, content or sender, or with a
    ValidityPeriod out of range; None when the request is complete."""
    if not params.get("To"):
        return 21604
    if not (params.get("Body") or params.get("MediaUrl") or params.get("ContentSid")):
        return 21602
    if not (params.get("From") or params.get("MessagingServiceSid")):
        return 21603
    validity = params.get("ValidityPeriod")
    if validity is not None:
        low, high = VALIDITY_PERIOD_RANGE
        if not validity.isdigit() or not low <= int(validity) <= high:
            return 21624
    return None


async def create_message(request: Request) -> Response:
    """`POST /2010-04-01/Accounts/{AccountSid}/Messages.json`."""
    state: SandboxState = request.app.state.sandbox
    sender: CallbackSender = request.app.state.callback_sender
    auth_token = basic_auth_password(request)
    if auth_token is None:
        return twilio_error(401, 20003)
    params = dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
    to = params.get("To", "")
    invalid = _missing_parameter_code(params)
    if invalid is not None:
        state.counts["twilio_rejected"] += 1
        return twilio_error(400, invalid)
    fault = state.faults.take("twilio", [to])
    if fault is not None and fault.timeout:
        generation = state.generation
        await hold(request, fault.sleep_seconds)
        if state.generation != generation and not fault.http_status:
            return twilio_error(504, 20504, "Gateway Timeout")
    if fault is not None and fault.http_status:
        state.counts["twilio_rejected"] += 1
        return twilio_error(fault.http_status, fault.twilio_code, fault.message, fault.retry_after)
    body = params.get("Body", "")
    message = SandboxMessage(
        api="twilio",
        id="SM" + os.urandom(16).hex(),
        to=to,
        received_at=time.time(),
        params=params,
        body=body,
        account_sid=request.path_params["account_sid"],
        from_=params.get("From") or None,
        messaging_service_sid=params.get("MessagingServiceSid") or None,
        # With a Messaging Service Twilio answers "accepted" before picking a sender.
        status="queued" if params.get("From") else "accepted",
        num_segments=count_segments(body),
    )
    state.messages.add(message)
    state.counts["twilio_accepted"] += 1
    response = JSONResponse(message_resource(message), status_code=201)
    callback_url = params.get("StatusCallback")
    callback = (callback_url, auth_token) if state.callbacks and callback_url else None
    stages = _lifecycle(message, fault, callback)
    if callback is None:
        for stage in stages:  # nobody to tell: the carrier answers at once
            stage()
    else:
        sender.submit(stages)
    return response


def _parse_date_filter(value: str) -> tuple[datetime, bool]:
    """A DateSent filter value: (moment, whether it named a whole day)."""
    if "T" not in value:
        day = date.fromisoformat(value)
        return datetime(day.year, day.month, day.day, tzinfo=UTC), True
    return datetime.fromisoformat(value.replace("Z", "+00:00")), False


def _date_filters(params: dict[str, str]) -> list[tuple[str, datetime, bool]]:
    # The SDK sends `DateSent>` / `DateSent<` keys, so the query reads
    # `DateSent>=…` (on or after) and `DateSent<=…` (on or before).
    return [
        (op, *_parse_date_filter(params[key]))
        for key, op in (("DateSent", "="), ("DateSent>", ">="), ("DateSent<", "<="))
        if params.get(key)
    ]


def _date_matches(sent_at: float, filters: list[tuple[str, datetime, bool]]) -> bool:
    for op, bound, whole_day in filters:
        if whole_day or op == "=":
            left = float(datetime.fromtimestamp(sent_at, UTC).date().toordinal())
            right = float(bound.date().toordinal())
        else:
            left, right = sent_at, bound.timestamp()
        if (op == "=" and left != right) or (op == ">=" and left < right):
            return False
        if op == "<=" and left > right:
            return False
    return True


async def list_messages(request: Request) -> Response:
    """`GET …/Messages.json`: newest first, filtered by To, From and DateSent, paged."""
    state: SandboxState = request.app.state.sandbox
    account_sid = request.path_params["account_sid"]
    params = dict(request.query_params)
    try:
        page_size = min(MAX_PAGE_SIZE, max(1, int(params.get("PageSize", DEFAULT_PAGE_SIZE))))
        page = max(0, int(params.get("Page", 0)))
        filters = _date_filters(params)
    except ValueError:
        return twilio_error(400, 20001, "Invalid paging or date parameter")
    to, from_ = params.get("To"), params.get("From")
    skip, found = page * page_size, []
    for message in reversed(state.messages):
        if message.api != "twilio" or message.account_sid != account_sid:
            continue
        if (to and message.to != to) or (from_ and message.from_ != from_):
            continue
        if filters and not _date_matches(message.date_sent or message.received_at, filters):
            continue
        if skip:
            skip -= 1
            continue
        found.append(message)
        if len(found) > page_size:
            break
    has_next = len(found) > page_size
    found = found[:page_size]
    base = f"/{API_VERSION}/Accounts/{account_sid}/Messages.json"
    keep = {k: v for k, v in params.items() if k not in ("Page", "PageSize", "PageToken")}

    def page_uri(number: int) -> str:
        query = {**keep, "PageSize": str(page_size), "Page": str(number)}
        if number:
            query["PageToken"] = f"PA{number}"
        return f"{base}?{urlencode(query)}"

    return JSONResponse(
        {
            "first_page_uri": page_uri(0),
            "end": page * page_size + max(0, len(found) - 1),
            "previous_page_uri": page_uri(page - 1) if page else None,
            "messages": [message_resource(m) for m in found],
            "uri": page_uri(page),
            "page_size": page_size,
            "start": page * page_size,
            "next_page_uri": page_uri(page + 1) if has_next else None,
            "page": page,
        }
    )


async def fetch_message(request: Request) -> Response:
    """`GET …/Messages/{Sid}.json`."""
    state: SandboxState = request.app.state.sandbox
    message = state.messages.get(request.path_params["message_sid"])
    if message is None or message.api != "twilio":
        return twilio_error(404, 20404, f"The requested resource {request.url.path} was not found")
    return JSONResponse(message_resource(message))


async def fetch_account(request: Request) -> Response:
    """`GET /2010-04-01/Accounts/{Sid}.json`: what `steady config check` asks for."""
    if basic_auth_password(request) is None:
        return twilio_error(401, 20003)
    state: SandboxState = request.app.state.sandbox
    sid = request.path_params["account_sid"]
    created = rfc2822(state.started_at)
    return JSONResponse(
        {
            "date_created": created,
            "date_updated": created,
            "friendly_name": "Steady sandbox",
            "owner_account_sid": sid,
            "sid": sid,
            "status": "active",
            "type": "Full",
            "uri": f"/{API_VERSION}/Accounts/{sid}.json",
        }
    )
