"""The preferences page: cadence, hours, time zone, channels, discreet mode, pause.

`GET /preferences/{token}` only shows the form (link scanners fetch GETs);
`POST` saves it. The token is single-purpose (`Purpose.PREFERENCES`) and names
the channel whose message carried the link; the page changes that person.

A field left out of a POST is left as it is. Checkboxes come with a hidden
"off" field of the same name, so an unticked box still says "off" while a
client that never showed the box changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from service.addresses import mask
from service.channels import ChannelKind
from service.pacing.window import split_zones
from service.people import subscriptions, zones
from service.storage.models import Channel, ChannelStatus, Subscriber
from service.tokens import Purpose
from service.web.context import AppContext, app_context, channel_for, invalid_link

router = APIRouter()

# The cadences a person can pick (PRODUCT.md "Pacing v1": 3 a week to 3 a day).
CADENCE_CHOICES: tuple[int, ...] = (3, 5, 7, 10, 14, 21)
# Their own hours narrow the legal sending window, 08:00-20:00 local, never widen it.
EARLIEST_HOUR = 8
LATEST_HOUR = 20
# Pause lengths offered, in days; 0 ends a pause now.
PAUSE_CHOICES: tuple[int, ...] = (1, 3, 7, 14, 30)
MAX_PAUSE_DAYS = max(PAUSE_CHOICES)
CHANNEL_LABELS = {ChannelKind.SMS: "Text messages", ChannelKind.EMAIL: "Email"}
SAVED_TEXT = "Your preferences are saved."
NEWEST_MESSAGE = "The newest message from Steady has a fresh one."


@dataclass
class PreferenceChanges:
    """A validated POST: None means "leave as it is"."""

    cadence: int | None = None
    hours: tuple[int, int] | None = None
    timezone: str | None = None
    discreet: bool | None = None
    pause_days: int | None = None
    channels_on: dict[str, bool] = field(default_factory=dict)
    learning: bool | None = None  # take part in the randomisation (PRODUCT.md, learning)


def _cadence_label(per_week: int) -> str:
    if per_week % 7 == 0:
        per_day = per_week // 7
        return "1 a day" if per_day == 1 else f"{per_day} a day"
    return f"{per_week} a week"


def _checkbox(form: FormData, name: str) -> bool | None:
    values = form.getlist(name)
    if not values:
        return None
    return any(str(value).strip().casefold() in {"on", "true", "yes", "1"} for value in values)


def _int_field(form: FormData, name: str) -> tuple[int | None, bool]:
    """(value, ok): a missing or blank field is (None, True)."""
    raw = str(form.get(name) or "").strip()
    if not raw:
        return None, True
    try:
        return int(raw), True
    except ValueError:
        return None, False


def validate_preferences(
    form: FormData, subscriber: Subscriber
) -> tuple[PreferenceChanges, dict[str, str]]:
    """Read the POST; returns the changes and {field: message} for anything wrong."""
    changes = PreferenceChanges()
    errors: dict[str, str] = {}
    cadence, ok = _int_field(form, "cadence")
    if not ok or (cadence is not None and cadence not in CADENCE_CHOICES):
        errors["cadence"] = "choose one of the listed frequencies"
    changes.cadence = cadence
    start, start_ok = _int_field(form, "hour_start")
    end, end_ok = _int_field(form, "hour_end")
    if start is not None or end is not None:
        start = subscriber.hour_start if start is None else start
        end = subscriber.hour_end if end is None else end
        if not (start_ok and end_ok) or not (EARLIEST_HOUR <= start < end <= LATEST_HOUR):
            errors["hour_start"] = (
                f"choose hours between {EARLIEST_HOUR}:00 and {LATEST_HOUR}:00, "
                "the start before the end"
            )
        else:
            changes.hours = (start, end)
    elif not (start_ok and end_ok):
        errors["hour_start"] = "choose hours from the lists"
    typed = str(form.get("timezone_other") or "").strip()
    chosen = typed or str(form.get("timezone") or "").strip()
    if chosen:
        changes.timezone = zones.check_zone_name(chosen)
        if changes.timezone is None:
            errors["timezone"] = "not a time zone we know; write it like America/Chicago"
    pause, ok = _int_field(form, "pause_days")
    if not ok or (pause is not None and not 0 <= pause <= MAX_PAUSE_DAYS):
        errors["pause_days"] = f"choose a pause of up to {MAX_PAUSE_DAYS} days"
    changes.pause_days = pause
    changes.discreet = _checkbox(form, "discreet")
    changes.learning = _checkbox(form, "learning")
    for kind in (ChannelKind.SMS, ChannelKind.EMAIL):
        wanted = _checkbox(form, f"channel_{kind}")
        if wanted is not None:
            changes.channels_on[kind] = wanted
    return changes, errors


def apply_preferences(
    session: Session,
    subscriber: Subscriber,
    own_channel: Channel,
    changes: PreferenceChanges,
    *,
    secret: str,
    evidence: dict[str, Any],
    now: datetime,
) -> list[str]:
    """Save the changes; returns notes for the person (what could not be done)."""
    notes: list[str] = []
    replan = False
    if changes.cadence is not None and changes.cadence != subscriber.cadence_per_week:
        subscriber.cadence_per_week = changes.cadence
        replan = True
    if changes.hours is not None and changes.hours != (subscriber.hour_start, subscriber.hour_end):
        subscriber.hour_start, subscriber.hour_end = changes.hours
        replan = True
    if changes.timezone is not None:
        # Naming a zone ends every guess; a changed zone plans the next nudge again.
        zones.set_zone(session, subscriber, changes.timezone, now)
    if changes.discreet is not None:
        subscriber.discreet = changes.discreet
    if changes.learning is not None:
        subscriber.experiment_opt_out = not changes.learning
    if changes.pause_days is not None:
        subscriber.paused_until = (
            now + timedelta(days=changes.pause_days) if changes.pause_days > 0 else None
        )
        replan = True
    for channel in _confirmed_channels(subscriber):
        wanted = changes.channels_on.get(channel.kind)
        if wanted is None:
            continue
        if not wanted and channel.status == ChannelStatus.ACTIVE:
            subscriptions.stop(session, channel, "preferences_page", secret, now)
        elif wanted and channel.status == ChannelStatus.STOPPED:
            if channel.id == own_channel.id:
                # The link reached them at this very address: that is their consent again.
                subscriptions.resume(session, channel, secret, evidence, now)
            elif channel.kind == ChannelKind.SMS:
                # After STOP only the phone itself can start texts again (carriers
                # block us until START comes from that number).
                notes.append("To get text messages again, text START to Steady's number.")
            else:
                notes.append("To get email again, use the link in one of Steady's emails.")
    if replan:
        # New cadence, hours or pause: the nudge already planned may be wrong now.
        subscriptions.cancel_pending_nudges(session, subscriber.id, now)
    return notes


def _confirmed_channels(subscriber: Subscriber) -> list[Channel]:
    return [
        channel
        for channel in subscriber.channels
        if channel.confirmed_at is not None
        and channel.status in (ChannelStatus.ACTIVE, ChannelStatus.STOPPED)
    ]


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
    cadences = sorted({*CADENCE_CHOICES, subscriber.cadence_per_week})
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
        for channel in _confirmed_channels(subscriber)
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
            "start_hours": list(range(EARLIEST_HOUR, LATEST_HOUR)),
            "end_hours": list(range(EARLIEST_HOUR + 1, LATEST_HOUR + 1)),
            "hour_start": subscriber.hour_start,
            "hour_end": subscriber.hour_end,
            **_zone_fields(subscriber),
            "discreet": subscriber.discreet,
            "experiment": ctx.settings.experiment == "on",
            "learning": not subscriber.experiment_opt_out,
            "pause_choices": PAUSE_CHOICES,
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
    return await run_in_threadpool(_save_preferences, request, token, form)


def _save_preferences(request: Request, token: str, form: FormData) -> Response:
    """The database side of a save; runs on a worker thread, off the event loop."""
    ctx = app_context(request)
    with ctx.sessions.begin() as session:
        channel = channel_for(session, ctx, Purpose.PREFERENCES, token)
        if channel is None:
            return invalid_link(request, ctx, NEWEST_MESSAGE)
        subscriber = channel.subscriber
        changes, errors = validate_preferences(form, subscriber)
        if errors:
            return _page(
                request,
                ctx,
                token,
                subscriber,
                errors=errors,
                notes=[],
                saved=False,
                status_code=422,
            )
        evidence = {
            "source": "preferences_page",
            "ip": request.client.host if request.client else None,
            "user_agent": request.headers.get("user-agent", "")[:200],
        }
        notes = apply_preferences(
            session,
            subscriber,
            channel,
            changes,
            secret=ctx.settings.secret_key.get_secret_value(),
            evidence=evidence,
            now=ctx.clock(),
        )
        session.flush()
        return _page(request, ctx, token, subscriber, errors={}, notes=notes, saved=True)
