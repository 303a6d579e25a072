"""The preferences page: cadence, hours, time zone, channels, discreet mode, pause.

`GET /preferences/{token}` only shows the form (link scanners fetch GETs);
`POST` saves it (`service.people.preferences` holds the rules). The token is
single-purpose (`Purpose.PREFERENCES`) and names the channel whose message
carried the link; the page changes that person.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from service.addresses import mask
from service.channels import ChannelKind
from service.pacing.window import split_zones
from service.people import preferences, zones
from service.people.preferences import Fields
from service.storage.models import ChannelStatus, Subscriber
from service.tokens import Purpose
from service.web.context import AppContext, app_context, channel_for, invalid_link

router = APIRouter()

CHANNEL_LABELS = {ChannelKind.SMS: "Text messages", ChannelKind.EMAIL: "Email"}
SAVED_TEXT = "Your preferences are saved."
NEWEST_MESSAGE = "The newest message from Steady has a fresh one."


def _cadence_label(per_week: int) -> str:
    if per_week % 7 == 0:
        per_day = per_week // 7
        return "1 a day" if per_day == 1 else f"{per_day} a day"
    return f"{per_week} a week"


def _page(
    request: Request,
    ctx: AppContext,
    token: str,
    subscriber: Subscriber,
    *,
    errors: dict[str, str],
    notes: list[str],
    saved: bool,
    status_code: int = 200,
) -> Response:
    cadences = sorted({*preferences.CADENCE_CHOICES, subscriber.cadence_per_week})
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
        for channel in preferences.confirmed_channels(subscriber)
    ]
    unreachable = [
        {"label": CHANNEL_LABELS[c.kind], "address": mask(c.address)}
        for c in subscriber.channels
        if c.status == ChannelStatus.SUPPRESSED
    ]
    return ctx.pages.TemplateResponse(
        request,
        "preferences.html",
        {
            "title": "Your preferences",
            "action": f"/preferences/{token}",
            "saved": SAVED_TEXT if saved else "",
            "notes": notes,
            "errors": errors,
            "cadences": [(value, _cadence_label(value)) for value in cadences],
            "cadence": subscriber.cadence_per_week,
            "start_hours": list(range(preferences.EARLIEST_HOUR, preferences.LATEST_HOUR)),
            "end_hours": list(range(preferences.EARLIEST_HOUR + 1, preferences.LATEST_HOUR + 1)),
            "hour_start": subscriber.hour_start,
            "hour_end": subscriber.hour_end,
            **_zone_fields(subscriber),
            "discreet": subscriber.discreet,
            "pause_choices": preferences.PAUSE_CHOICES,
            "paused_until": paused_until,
            "channels": channels,
            "unreachable": unreachable,
        },
        status_code=status_code,
    )


def _zone_fields(subscriber: Subscriber) -> dict[str, Any]:
    """The zone select: the common zones, the person's own if it is another one, and
    while it is only a guess, a blank choice and the zones their number may be in."""
    options = dict(zones.COMMON_ZONES)
    candidates = split_zones(subscriber.timezone_candidates)
    if not candidates and subscriber.timezone not in options:
        options = {subscriber.timezone: subscriber.timezone, **options}
    return {
        "zone_options": list(options.items()),
        "timezone": "" if candidates else subscriber.timezone,
        "zone_candidates": [zones.zone_city(zone) for zone in candidates],
    }


@router.get("/preferences/{token}", response_class=HTMLResponse)
def preferences_page(request: Request, token: str) -> Response:
    """Show the form; changes nothing."""
    ctx = app_context(request)
    with ctx.sessions() as session:
        channel = channel_for(session, ctx, Purpose.PREFERENCES, token)
        if channel is None:
            return invalid_link(request, ctx, NEWEST_MESSAGE)
        return _page(request, ctx, token, channel.subscriber, errors={}, notes=[], saved=False)


@router.post("/preferences/{token}", response_class=HTMLResponse)
async def save_preferences(request: Request, token: str) -> Response:
    form = await request.form()
    fields = {name: [str(value) for value in form.getlist(name)] for name in form}
    return await run_in_threadpool(_save_preferences, request, token, fields)


def _save_preferences(request: Request, token: str, fields: Fields) -> Response:
    """The database side of a save; runs on a worker thread, off the event loop."""
    ctx = app_context(request)
    with ctx.sessions.begin() as session:
        channel = channel_for(session, ctx, Purpose.PREFERENCES, token)
        if channel is None:
            return invalid_link(request, ctx, NEWEST_MESSAGE)
        evidence = {
            "source": "preferences_page",
            "ip": request.client.host if request.client else None,
            "user_agent": request.headers.get("user-agent", "")[:200],
        }
        saved = preferences.save(
            session, channel, fields, hasher=ctx.hasher, evidence=evidence, now=ctx.clock()
        )
        session.flush()
        return _page(
            request,
            ctx,
            token,
            channel.subscriber,
            errors=saved.errors,
            notes=saved.notes,
            saved=not saved.errors,
            status_code=422 if saved.errors else 200,
        )
