"""The sandbox playing a subscriber: inbound texts posted to Steady as Twilio posts them.

`POST /sandbox/inbound` with `{"from", "body", "to"?}` makes the sandbox POST a
Twilio-style inbound message webhook (form-encoded, signed with `X-Twilio-Signature`
under the sandbox's auth token) to `<public_url>/webhooks/twilio/inbound`, and
answer with Steady's status and TwiML. Each exchange is kept for `GET /sandbox/exchanges`.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped, unused-ignore]

from service.devtools.sandbox.callbacks import TRANSPORT_ERRORS, CallbackSender, OutgoingPost
from service.devtools.sandbox.state import SandboxState
from service.devtools.sandbox.twilio_api import API_VERSION, SANDBOX_PHONE_NUMBER
from service.messages.segments import count_segments


async def simulate_inbound(request: Request) -> Response:
    """`POST /sandbox/inbound`: play a subscriber texting Steady's number."""
    state: SandboxState = request.app.state.sandbox
    sender: CallbackSender = request.app.state.callback_sender
    try:
        data = json.loads(await request.body())
    except ValueError:
        return JSONResponse({"error": "expected a JSON object"}, status_code=400)
    if not isinstance(data, dict) or not isinstance(data.get("from"), str):
        return JSONResponse({"error": "'from' (a phone number) is required"}, status_code=400)
    if not isinstance(data.get("body"), str):
        return JSONResponse({"error": "'body' (the text) is required"}, status_code=400)
    sid = "SM" + uuid.uuid4().hex
    to = str(data.get("to") or SANDBOX_PHONE_NUMBER)
    form = {
        "ToCountry": "US",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": data["body"],
        "FromCountry": "US",
        "To": to,
        "NumSegments": str(count_segments(data["body"])),
        "MessageSid": sid,
        "AccountSid": state.account_sid,
        "From": data["from"],
        "ApiVersion": API_VERSION,
    }
    signature = RequestValidator(state.auth_token).compute_signature(state.inbound_url, form)
    state.counts["inbound"] += 1
    exchange: dict[str, Any] = {"message_sid": sid, "from": data["from"], "to": to}
    exchange |= {"body": data["body"], "at": time.time()}
    post = OutgoingPost(
        state.inbound_url,
        urlencode(form).encode("utf-8"),
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
            "User-Agent": "TwilioProxy/1.1",
        },
    )
    try:
        status, twiml = await sender.exchange(post)
    except TRANSPORT_ERRORS as exc:
        exchange |= {"status": None, "twiml": None, "error": type(exc).__name__}
        state.exchanges.append(exchange)
        return JSONResponse(exchange, status_code=502)
    exchange |= {"status": status, "twiml": twiml}
    state.exchanges.append(exchange)
    return JSONResponse(exchange)
