"""The sandbox's stand-in for SendGrid's v3 Mail Send API and its Signed Event Webhook.

`POST /v3/mail/send` answers 202 with an empty body and `X-Message-Id`, or 400 with
SendGrid's `{"errors": [{"message", "field", "help"}]}`. Events follow as JSON arrays,
signed with ECDSA P-256 over `timestamp + body` (headers
`X-Twilio-Email-Event-Webhook-Signature` / `-Timestamp`), with the mail's
`custom_args` copied onto each event at the top level, as SendGrid does.

`GET /v3/messages` is the Email Activity API's message filter, answering in its
shape (`{"messages": [{"msg_id", "from_email", "subject", "to_email", "status",
"opens_count", "clicks_count", "last_event_time"}]}`) for the query forms
reconciliation uses: `unique_args['name']="value"` and `to_email="value"`, one or
several joined by `AND`. Any other query is a 400 naming what it supports.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.devtools.sandbox.callbacks import CallbackSender, OutgoingPost, Stage
from service.devtools.sandbox.state import FaultRule, SandboxMessage, SandboxState, SigningKey
from service.devtools.sandbox.twilio_api import hold

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
ERRORS_HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"

BOUNCE_DETAILS = {
    "reason": "550 5.1.1 The email account that you tried to reach does not exist.",
    "status": "5.1.1",
    "type": "bounce",
    "bounce_classification": "Invalid Address",
}
DROPPED_DETAILS = {"reason": "Bounced Address", "status": "5.0.0"}
DELIVERED_DETAILS = {"response": "250 OK", "ip": "127.0.0.1", "tls": 1}
ACTIVITY_DEFAULT_LIMIT = 10
ACTIVITY_MAX_LIMIT = 1000
# The Email Activity API's summary status for each of the sandbox's last events.
ACTIVITY_STATUS = {"delivered": "delivered", "bounce": "not_delivered", "dropped": "not_delivered"}
_CLAUSE = re.compile(
    r"""^\(?\s*(?:unique_args\['(?P<arg>[^']+)'\]|(?P<field>to_email))\s*=\s*"(?P<value>[^"]*)"\s*\)?$"""
)
SUPPORTED_QUERIES = (
    'the sandbox supports only unique_args[\'name\']="value" and to_email="value", joined by AND'
)


def _random_id() -> str:
    """22 URL-safe characters, the shape of SendGrid's X-Message-Id and sg_event_id."""
    return base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode("ascii")


def sendgrid_errors(status: int, errors: list[tuple[str | None, str]]) -> Response:
    payload = {
        "errors": [
            {"message": message, "field": field, "help": ERRORS_HELP if field else None}
            for field, message in errors
        ]
    }
    return JSONResponse(payload, status_code=status)


def _has_email(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("email"), str) and "@" in value["email"]


def validate_mail(mail: Any) -> list[tuple[str | None, str]]:
    """The basic shape SendGrid insists on: personalizations, from, subject, content."""
    if not isinstance(mail, dict):
        return [(None, "Bad Request")]
    errors: list[tuple[str | None, str]] = []
    personalizations = mail.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        errors.append(
            (
                "personalizations",
                "The personalizations field is required and must have at least one "
                "personalization.",
            )
        )
        personalizations = []
    for index, item in enumerate(personalizations):
        to = item.get("to") if isinstance(item, dict) else None
        if not isinstance(to, list) or not to or not all(_has_email(r) for r in to):
            errors.append(
                (
                    f"personalizations.{index}.to",
                    "The to array is required for all personalization objects, and must have "
                    "at least one email object with a valid email address.",
                )
            )
    if not _has_email(mail.get("from")):
        errors.append(("from.email", "The from object must be provided for every email send."))
    templated = bool(mail.get("template_id"))
    every_has_subject = personalizations and all(
        isinstance(p, dict) and p.get("subject") for p in personalizations
    )
    if not (templated or mail.get("subject") or every_has_subject):
        errors.append(("subject", "The subject is required."))
    content = mail.get("content")
    content_ok = isinstance(content, list) and all(
        isinstance(c, dict) and c.get("type") and isinstance(c.get("value"), str) for c in content
    )
    if not templated and (not content_ok or not content):
        errors.append(
            (
                "content",
                "Unless a valid template_id is provided, the content parameter is required. "
                "There must be at least one defined content block.",
            )
        )
    return errors


def _recipients(mail: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """(address, custom args) for every recipient; personalization args win over global ones."""
    shared = {str(k): str(v) for k, v in (mail.get("custom_args") or {}).items()}
    found: list[tuple[str, dict[str, str]]] = []
    for item in mail["personalizations"]:
        args = shared | {str(k): str(v) for k, v in (item.get("custom_args") or {}).items()}
        found.extend((recipient["email"], args) for recipient in item["to"])
    return found


def sg_message_id(message: SandboxMessage, index: int) -> str:
    """SendGrid's per-recipient message id: the X-Message-Id, a dot, a filter suffix."""
    return f"{message.id}.filterdrecv-sandbox-1-{index:08X}-0.0"


def _event_stage(
    message: SandboxMessage,
    event: str,
    details: dict[str, Any],
    categories: list[str],
    target: tuple[str, SigningKey] | None,
) -> Stage:
    """Move the message to `event`; build the signed event post when events are on."""

    def run() -> OutgoingPost | None:
        message.status = event
        message.date_updated = time.time()
        if target is None:
            return None
        url, key = target
        timestamp = str(int(time.time()))
        events = []
        for index, (address, args) in enumerate(_recipients(message.params)):
            item: dict[str, Any] = dict(args)  # custom args first: SendGrid's own keys win
            item |= {
                "email": address,
                "timestamp": int(timestamp),
                "event": event,
                "sg_event_id": _random_id(),
                "sg_message_id": sg_message_id(message, index),
                "smtp-id": f"<{message.id}@sandbox.ismtpd>",
                **details,
            }
            if categories:
                item["category"] = categories
            events.append(item)
        body = json.dumps(events, separators=(",", ":")).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "SendGrid Event API",
            SIGNATURE_HEADER: key.sign(timestamp, body),
            TIMESTAMP_HEADER: timestamp,
        }
        return OutgoingPost(url, body, headers)

    return run


def _lifecycle(
    message: SandboxMessage, fault: FaultRule | None, target: tuple[str, SigningKey] | None
) -> list[Stage]:
    categories = [str(c) for c in message.params.get("categories") or []]
    outcome = fault.sendgrid_event if fault is not None else None
    if outcome == "dropped":
        return [_event_stage(message, "dropped", DROPPED_DETAILS, categories, target)]
    final, details = ("bounce", BOUNCE_DETAILS) if outcome == "bounce" else ("delivered", {})
    return [
        _event_stage(message, "processed", {}, categories, target),
        _event_stage(message, final, details or DELIVERED_DETAILS, categories, target),
    ]


async def send_mail(request: Request) -> Response:
    """`POST /v3/mail/send`."""
    state: SandboxState = request.app.state.sandbox
    sender: CallbackSender = request.app.state.callback_sender
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return sendgrid_errors(401, [(None, "authorization required")])
    try:
        mail = json.loads(await request.body())
    except ValueError:
        return sendgrid_errors(400, [(None, "Bad Request")])
    errors = validate_mail(mail)
    if errors:
        state.counts["sendgrid_rejected"] += 1
        return sendgrid_errors(400, errors)
    recipients = [address for address, _ in _recipients(mail)]
    fault = state.faults.take("sendgrid", recipients)
    if fault is not None and fault.timeout:
        generation = state.generation
        await hold(request, fault.sleep_seconds)
        if state.generation != generation and not fault.http_status:
            return sendgrid_errors(504, [(None, "Gateway Timeout")])
    if fault is not None and fault.http_status:
        state.counts["sendgrid_rejected"] += 1
        response = sendgrid_errors(fault.http_status, [(None, fault.message or "sandbox fault")])
        if fault.retry_after is not None:
            response.headers["Retry-After"] = str(int(fault.retry_after))
        return response
    message = SandboxMessage(
        api="sendgrid",
        id=_random_id(),
        to=recipients[0],
        received_at=time.time(),
        params=mail,
        subject=mail.get("subject") or mail["personalizations"][0].get("subject"),
    )
    state.messages.add(message)
    state.counts["sendgrid_accepted"] += 1
    target = (state.events_url, state.signing_key) if state.callbacks else None
    stages = _lifecycle(message, fault, target)
    if target is None:
        for stage in stages:
            stage()
    else:
        sender.submit(stages)
    return Response(status_code=202, headers={"X-Message-Id": message.id})


async def get_scopes(request: Request) -> Response:
    """`GET /v3/scopes`: what `steady config check` asks for; any key may send mail."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return sendgrid_errors(401, [(None, "authorization required")])
    return JSONResponse({"scopes": ["mail.send"]})


def parse_activity_query(query: str) -> list[tuple[str, str, str]] | None:
    """[("arg", name, value) or ("to_email", "", value)]; None for an unsupported query."""
    clauses: list[tuple[str, str, str]] = []
    for part in re.split(r"\s+AND\s+", query.strip()):
        match = _CLAUSE.match(part.strip())
        if match is None:
            return None
        if match["arg"] is not None:
            clauses.append(("arg", match["arg"], match["value"]))
        else:
            clauses.append(("to_email", "", match["value"]))
    return clauses


def _activity_row(message: SandboxMessage, index: int, address: str) -> dict[str, Any]:
    sender = message.params.get("from") or {}
    last_event = message.date_updated or message.received_at
    return {
        "from_email": sender.get("email"),
        "msg_id": sg_message_id(message, index),
        "subject": message.subject,
        "to_email": address,
        "status": ACTIVITY_STATUS.get(message.status, "processed"),
        "opens_count": 0,
        "clicks_count": 0,
        "last_event_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(last_event)),
    }


async def filter_messages(request: Request) -> Response:
    """`GET /v3/messages`: the Email Activity API, newest first."""
    state: SandboxState = request.app.state.sandbox
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return sendgrid_errors(401, [(None, "authorization required")])
    try:
        limit = int(request.query_params.get("limit", ACTIVITY_DEFAULT_LIMIT))
    except ValueError:
        limit = 0
    if not 1 <= limit <= ACTIVITY_MAX_LIMIT:
        return sendgrid_errors(400, [("limit", f"limit must be 1 to {ACTIVITY_MAX_LIMIT}")])
    query = request.query_params.get("query", "")
    clauses = parse_activity_query(query) if query else []
    if clauses is None:
        return sendgrid_errors(400, [("query", SUPPORTED_QUERIES)])
    found: list[dict[str, Any]] = []
    for message in reversed(state.messages):
        if message.api != "sendgrid":
            continue
        for index, (address, args) in enumerate(_recipients(message.params)):
            if all(
                (args.get(name) if kind == "arg" else address) == value
                for kind, name, value in clauses
            ):
                found.append(_activity_row(message, index, address))
        if len(found) >= limit:
            break
    return JSONResponse({"messages": found[:limit]})
