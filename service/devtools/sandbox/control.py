"""The sandbox's own JSON endpoints, for operators and tests (listed in `sandbox.server`)."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.devtools.sandbox.callbacks import CallbackSender
from service.devtools.sandbox.state import FaultRule, FaultRuleError, SandboxState


def _state(request: Request) -> SandboxState:
    state: SandboxState = request.app.state.sandbox
    return state


async def get_messages(request: Request) -> Response:
    state = _state(request)
    api, to = request.query_params.get("api"), request.query_params.get("to")
    found = [
        m.to_json()
        for m in state.messages
        if (api is None or m.api == api) and (to is None or m.to == to)
    ]
    limit = request.query_params.get("limit")
    if limit is not None and limit.isdigit():
        found = found[-int(limit) :] if int(limit) else []
    return JSONResponse(found)


async def delete_messages(request: Request) -> Response:
    _state(request).reset()
    return JSONResponse({"status": "reset"})


async def get_stats(request: Request) -> Response:
    state = _state(request)
    sender: CallbackSender = request.app.state.callback_sender
    counts = state.counts
    return JSONResponse(
        {
            "twilio": {
                "accepted": counts["twilio_accepted"],
                "rejected": counts["twilio_rejected"],
            },
            "sendgrid": {
                "accepted": counts["sendgrid_accepted"],
                "rejected": counts["sendgrid_rejected"],
            },
            "callbacks": {
                "queued": sender.queued,
                "posted": counts["callbacks_posted"],
                "refused": counts["callbacks_refused"],
                "failed": counts["callbacks_failed"],
                "dropped": counts["callbacks_dropped"],
            },
            "inbound": counts["inbound"],
            "stored_messages": len(state.messages),
            "message_capacity": state.messages.capacity,
        }
    )


async def get_faults(request: Request) -> Response:
    return JSONResponse([rule.to_json() for rule in _state(request).faults.rules])


async def add_faults(request: Request) -> Response:
    state = _state(request)
    try:
        data = json.loads(await request.body())
        rules = [FaultRule.from_json(item) for item in (data if isinstance(data, list) else [data])]
    except (ValueError, TypeError) as exc:
        # FaultRuleError is a ValueError; TypeError: a field of the wrong type.
        message = str(exc) if isinstance(exc, FaultRuleError) else f"bad fault rule: {exc}"
        return JSONResponse({"error": message}, status_code=400)
    state.faults.rules.extend(rules)
    return JSONResponse([rule.to_json() for rule in state.faults.rules], status_code=201)


async def clear_faults(request: Request) -> Response:
    _state(request).faults.rules.clear()
    return JSONResponse([])


async def get_exchanges(request: Request) -> Response:
    return JSONResponse(list(_state(request).exchanges))


async def get_public_key(request: Request) -> Response:
    return JSONResponse({"public_key": _state(request).public_key_b64})
