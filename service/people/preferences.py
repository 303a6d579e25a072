"""A person's own choices: cadence, hours, time zone, channels, discreet mode, pause.

The preferences page (`service.web.preferences`) hands over the posted fields;
the rules of what may change, and how, are here. A field left out is left as it
is. Checkboxes come with a hidden "off" field of the same name, so an unticked
box still says "off" while a client that never showed the box changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from service.addresses import AddressHasher
from service.channels import ChannelKind
from service.people import subscriptions, zones
from service.storage.models import Channel, ChannelStatus, Subscriber

# The cadences a person can pick (PRODUCT.md "Pacing v1": 3 a week to 3 a day).
CADENCE_CHOICES: tuple[int, ...] = (3, 5, 7, 10, 14, 21)
# Their own hours narrow the legal sending window, 08:00-20:00 local, never widen it.
EARLIEST_HOUR = 8
LATEST_HOUR = 20
# Pause lengths offered, in days; 0 ends a pause now.
PAUSE_CHOICES: tuple[int, ...] = (1, 3, 7, 14, 30)
MAX_PAUSE_DAYS = max(PAUSE_CHOICES)
TRUE_WORDS = frozenset({"on", "true", "yes", "1"})

# Each posted field's values, in the order they came.
Fields = Mapping[str, Sequence[str]]


@dataclass
class PreferenceChanges:
    """A validated post: None means "leave as it is"."""

    cadence: int | None = None
    hours: tuple[int, int] | None = None
    timezone: str | None = None
    discreet: bool | None = None
    pause_days: int | None = None
    channels_on: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class Saved:
    """What a save did: {field: message} when nothing was saved, else notes for the person."""

    errors: dict[str, str]
    notes: list[str]


def save(
    session: Session,
    own_channel: Channel,
    fields: Fields,
    *,
    hasher: AddressHasher,
    evidence: dict[str, Any],
    now: datetime,
) -> Saved:
    """Check the posted fields and, if they are all right, apply them to the person
    whose `own_channel` the link named."""
    subscriber = own_channel.subscriber
    changes, errors = read_changes(fields, subscriber)
    if errors:
        return Saved(errors=errors, notes=[])
    notes = apply_changes(
        session, subscriber, own_channel, changes, hasher=hasher, evidence=evidence, now=now
    )
    return Saved(errors={}, notes=notes)


def _checkbox(fields: Fields, name: str) -> bool | None:
    values = fields.get(name) or ()
    if not values:
        return None
    return any(value.strip().casefold() in TRUE_WORDS for value in values)


def _text_field(fields: Fields, name: str) -> str:
    """The field's value, stripped; a repeated field counts as its last value, as forms
    read it, and a missing one as blank."""
    values = fields.get(name) or ("",)
    return values[-1].strip()


def _int_field(fields: Fields, name: str) -> tuple[int | None, bool]:
    """(value, ok): a missing or blank field is (None, True)."""
    raw = _text_field(fields, name)
    if not raw:
        return None, True
    try:
        return int(raw), True
    except ValueError:
        return None, False


def read_changes(
    fields: Fields, subscriber: Subscriber
) -> tuple[PreferenceChanges, dict[str, str]]:
    """Read the post; returns the changes and {field: message} for anything wrong."""
    changes = PreferenceChanges()
    errors: dict[str, str] = {}
    cadence, ok = _int_field(fields, "cadence")
    if not ok or (cadence is not None and cadence not in CADENCE_CHOICES):
        errors["cadence"] = "choose one of the listed frequencies"
    changes.cadence = cadence
    start, start_ok = _int_field(fields, "hour_start")
    end, end_ok = _int_field(fields, "hour_end")
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
    chosen = _text_field(fields, "timezone_other") or _text_field(fields, "timezone")
    if chosen:
        changes.timezone = zones.check_zone_name(chosen)
        if changes.timezone is None:
            errors["timezone"] = "not a time zone we know; write it like America/Chicago"
    pause, ok = _int_field(fields, "pause_days")
    if not ok or (pause is not None and not 0 <= pause <= MAX_PAUSE_DAYS):
        errors["pause_days"] = f"choose a pause of up to {MAX_PAUSE_DAYS} days"
    changes.pause_days = pause
    changes.discreet = _checkbox(fields, "discreet")
    for kind in ChannelKind:
        wanted = _checkbox(fields, f"channel_{kind}")
        if wanted is not None:
            changes.channels_on[kind] = wanted
    return changes, errors


def apply_changes(
    session: Session,
    subscriber: Subscriber,
    own_channel: Channel,
    changes: PreferenceChanges,
    *,
    hasher: AddressHasher,
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
    if changes.pause_days is not None:
        subscriber.paused_until = (
            now + timedelta(days=changes.pause_days) if changes.pause_days > 0 else None
        )
        replan = True
    for channel in confirmed_channels(subscriber):
        wanted = changes.channels_on.get(channel.kind)
        if wanted is None:
            continue
        if not wanted and channel.status == ChannelStatus.ACTIVE:
            subscriptions.stop(session, channel, "preferences_page", hasher, now)
        elif wanted and channel.status == ChannelStatus.STOPPED:
            if channel.id == own_channel.id:
                # The link reached them at this very address: that is their consent again.
                subscriptions.resume(session, channel, hasher, evidence, now)
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


def confirmed_channels(subscriber: Subscriber) -> list[Channel]:
    """The channels a person can turn on and off themselves."""
    return [
        channel
        for channel in subscriber.channels
        if channel.confirmed_at is not None
        and channel.status in (ChannelStatus.ACTIVE, ChannelStatus.STOPPED)
    ]
