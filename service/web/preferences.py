"""The preferences page: cadence, hours, time zone, channels, discreet mode, pause.

`GET /preferences/{token}` only shows the form (link scanners fetch GETs);
`POST` saves it. The token is single-purpose (`Purpose.PREFERENCES`) and names
the channel whose message carried the link; the page changes that person.
The rules of what may change live in `service.people.preferences`; this module
reads the form, hands it over and shows the result.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from service.addresses import mask
from service.channels import ChannelKind
from service.people import preferences
from service.storage.models import Channel, ChannelStatus
from service.tokens import Purpose
from service.web.context import AppContext, app_context, channel_for, invalid_link

router = APIRouter(include_in_schema=False)
log = structlog.get_logger(__name__)

CHANNEL_LABELS = {ChannelKind.SMS: "Text messages", ChannelKind.EMAIL: "Email"}
SAVED_TEXT = "Your preferences are saved."
NEWEST_MESSAGE = "The newest message from Steady has a fresh one."


def _cadence_label(per_week: int) -> str:
    if per_week % 7 == 0:
        per_day = per_week // 7
        return "1 a day" if per_day == 1 else f"{per_day} a day"
    return f"{per_week} a week"


def _fields(form: FormData) -> preferences.Fields:
    """Every posted field's values as text, in the order they came."""
    return {name: [str(value) for value in form.getlist(name)] for name in form}


def _page(
    request: Request,
    ctx: AppContext,
    token: str,
    via: Channel,
    *,
    errors: dict[str, str],
    notes: list[str],
    saved: bool,
    status_code: int = 200,
) -> Response:
    subscriber = via.subscriber
    paused_until = None
    if subscriber.paused_until is not None and subscriber.paused_until > ctx.clock():
        local = subscriber.paused_until.astimezone(ZoneInfo(subscriber.timezone))
        paused_until = local.strftime("%A %d %B, %H:%M")
    channels = [
        {
            "kind": str(channel.kind),
            "label": CHANNEL_LABELS[channel.kind],
            "address": mask(channel.address),
            "on": channel.status == ChannelStatus.ACTIVE,
        }
        for channel in preferences.confirmed_channels(subscriber, via)
    ]
    unreachable = [
        {"label": CHANNEL_LABELS[c.kind], "address": mask(c.address)}
        for c in preferences.unreachable_channels(subscriber, via)
    ]
    addable = preferences.addable_kind(via)
    zone = preferences.zone_choices(subscriber)
    return ctx.pages.TemplateResponse(
        request,
        "preferences.html",
        {
            "title": "Your preferences",
            "action": f"/preferences/{token}",
            "saved": SAVED_TEXT if saved else "",
            "notes": notes,
            "errors": errors,
            "cadences": [
                (value, _cadence_label(value)) for value in preferences.cadence_choices(subscriber)
            ],
            "cadence": subscriber.cadence_per_week,
            "start_hours": list(range(preferences.EARLIEST_HOUR, preferences.LATEST_HOUR)),
            "end_hours": list(range(preferences.EARLIEST_HOUR + 1, preferences.LATEST_HOUR + 1)),
            "hour_start": subscriber.hour_start,
            "hour_end": subscriber.hour_end,
            "zone_options": zone.options,
            "timezone": zone.selected,
            "zone_candidates": zone.candidates,
            "discreet": subscriber.discreet,
            "experiment": ctx.settings.experiment == "on",
            "learning": not subscriber.experiment_opt_out,
            "pause_choices": preferences.PAUSE_CHOICES,
            "paused_until": paused_until,
            "channels": channels,
            "unreachable": unreachable,
            "add_field": preferences.ADD_FIELDS[addable] if addable is not None else None,
        },
        status_code=status_code,
    )


@router.get("/preferences/{token}", response_class=HTMLResponse)
def preferences_page(request: Request, token: str) -> Response:
    """Show the form; changes nothing."""
    ctx = app_context(request)
    with ctx.sessions() as session:
        channel = channel_for(session, ctx, Purpose.PREFERENCES, token)
        if channel is None:
            return invalid_link(request, ctx, NEWEST_MESSAGE)
        return _page(request, ctx, token, channel, errors={}, notes=[], saved=False)


@router.post("/preferences/{token}", response_class=HTMLResponse)
async def save_preferences(request: Request, token: str) -> Response:
    form = await request.form()
    return await run_in_threadpool(_save_preferences, request, token, _fields(form))


def _save_preferences(request: Request, token: str, fields: preferences.Fields) -> Response:
    """The database side of a save; runs on a worker thread, off the event loop."""
    ctx = app_context(request)
    with ctx.sessions.begin() as session:
        channel = channel_for(session, ctx, Purpose.PREFERENCES, token)
        if channel is None:
            return invalid_link(request, ctx, NEWEST_MESSAGE)
        saved = preferences.save(
            session,
            channel,
            fields,
            client=request.client.host if request.client else None,
            user_agent=request.headers.get("user-agent", ""),
            signups=ctx.signups,
            sms_countries=ctx.settings.sms_country_codes,
            hasher=ctx.hasher,
            now=ctx.clock(),
        )
        if saved.errors:
            return _page(
                request,
                ctx,
                token,
                channel,
                errors=saved.errors,
                notes=[],
                saved=False,
                status_code=422,
            )
        response = _page(request, ctx, token, channel, errors={}, notes=saved.notes, saved=True)
        owner_id = channel.id
    if saved.join is not None:
        # After the answer, as a signup is recorded: see `preferences.ask_to_join`.
        response.background = BackgroundTask(ask_to_join, ctx, owner_id, saved.join)
    return response


def ask_to_join(ctx: AppContext, owner_id: int, new_channel: tuple[ChannelKind, str]) -> None:
    """Ask the new address to join, then wake the sender (after the response)."""
    try:
        with ctx.sessions.begin() as session:
            message_id = preferences.ask_to_join(
                session, owner_id, new_channel, hasher=ctx.hasher, now=ctx.clock()
            )
    except Exception as exc:
        # The page has answered; the person can add the address again. Logged for operators.
        log.error("join_request_failed", error=type(exc).__name__)
        return
    # Only after the commit: a worker woken earlier could miss the new message.
    if message_id is not None:
        ctx.waker.wake([message_id])
