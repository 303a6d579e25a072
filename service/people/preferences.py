"""A person's own choices: cadence, hours, time zone, channels, discreet mode, pause.

The preferences page (`service.web.preferences`) hands over the posted fields;
the rules of what may change, and how, are here: `save` checks and applies a
post, and the other public functions say what the page may offer. A field left
out is left as it is. Checkboxes come with a hidden "off" field of the same
name, so an unticked box still says "off" while a client that never showed the
box changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from service.addresses import AddressHasher, InvalidAddress, normalise_email, normalise_phone
from service.channels import ChannelKind
from service.pacing.window import split_zones
from service.people import subscriptions
from service.people.abuse import SignupAttempt, SignupGuard, check_sms_number
from service.people.zones.names import COMMON_ZONES, check_zone_name, zone_city
from service.people.zones.subscriber import set_zone
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
# The field that asks another channel of each kind to join.
ADD_FIELDS = {ChannelKind.SMS: "new_phone", ChannelKind.EMAIL: "new_email"}
ADDED_TEXT = (
    "If that address can receive our messages, a confirmation is on its way. "
    "Once you confirm it from there, it joins these settings."
)
TOO_MANY_SIGNUPS = "Too many signups lately for that address; please try again later."
SOURCE = "preferences_page"

# Each posted field's values, in the order they came.
Fields = Mapping[str, Sequence[str]]


@dataclass
class PreferenceChanges:
    """A validated post: None means "leave as it is"."""

    cadence: int | None = None
    hours: tuple[int, int] | None = None
    timezone: str | None = None
    discreet: bool | None = None
    learning: bool | None = None  # take part in the randomisation (PRODUCT.md, learning)
    pause_days: int | None = None
    channels_on: dict[str, bool] = field(default_factory=dict)
    # Another channel to ask to join this person: (kind, normalised address).
    new_channel: tuple[ChannelKind, str] | None = None


@dataclass(frozen=True)
class Saved:
    """What a save did: {field: message} when nothing was saved, else notes for the
    person and the channel to ask to join once the answer has gone (`ask_to_join`)."""

    errors: dict[str, str]
    notes: list[str]
    join: tuple[ChannelKind, str] | None = None


@dataclass(frozen=True)
class ZoneChoices:
    """The zone select: (value, label) options, the one selected ("" while the zone is
    only a guess) and the cities of the zones their number may be in."""

    options: list[tuple[str, str]]
    selected: str
    candidates: list[str]


def save(
    session: Session,
    own_channel: Channel,
    fields: Fields,
    *,
    client: str | None,
    user_agent: str,
    signups: SignupGuard,
    sms_countries: frozenset[str],
    hasher: AddressHasher,
    now: datetime,
) -> Saved:
    """Check the posted fields and, if they are all right, apply them to the person
    whose `own_channel` the link named. `client` is the poster's address as the
    server resolved it (None if unknown)."""
    subscriber = own_channel.subscriber
    changes, errors = read_changes(fields, subscriber, sms_countries)
    if errors:
        return Saved(errors=errors, notes=[])
    evidence = {"source": SOURCE, "ip": client, "user_agent": user_agent[:200]}
    notes = apply_changes(
        session, subscriber, own_channel, changes, hasher=hasher, evidence=evidence, now=now
    )
    join = None
    if changes.new_channel is not None:
        admitted = admit_channel(
            changes.new_channel, client=client or "unknown", signups=signups, now=now
        )
        notes.append(ADDED_TEXT if admitted else TOO_MANY_SIGNUPS)
        join = changes.new_channel if admitted else None
    session.flush()
    return Saved(errors={}, notes=notes, join=join)


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


def missing_kind(subscriber: Subscriber) -> ChannelKind | None:
    """The kind of channel this person could add (they have one of each at most)."""
    kinds = {channel.kind for channel in subscriber.channels}
    return next((kind for kind in ChannelKind if kind not in kinds), None)


def addable_kind(via: Channel) -> ChannelKind | None:
    """The kind a link of `via` may offer to add: only a confirmed channel asks."""
    return missing_kind(via.subscriber) if via.confirmed_at is not None else None


def _new_channel(
    fields: Fields, subscriber: Subscriber, sms_countries: frozenset[str]
) -> tuple[tuple[ChannelKind, str] | None, dict[str, str]]:
    kind = missing_kind(subscriber)
    if kind is None:
        return None, {}
    name = ADD_FIELDS[kind]
    raw = _text_field(fields, name)
    if not raw:
        return None, {}
    try:
        if kind == ChannelKind.SMS:
            address = normalise_phone(raw)
            check_sms_number(address, sms_countries)
        else:
            address = normalise_email(raw)
    except InvalidAddress as exc:
        return None, {name: exc.message}
    return (kind, address), {}


def read_changes(
    fields: Fields, subscriber: Subscriber, sms_countries: frozenset[str] = frozenset()
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
        changes.timezone = check_zone_name(chosen)
        if changes.timezone is None:
            errors["timezone"] = "not a time zone we know; write it like America/Chicago"
    pause, ok = _int_field(fields, "pause_days")
    if not ok or (pause is not None and not 0 <= pause <= MAX_PAUSE_DAYS):
        errors["pause_days"] = f"choose a pause of up to {MAX_PAUSE_DAYS} days"
    changes.pause_days = pause
    changes.discreet = _checkbox(fields, "discreet")
    changes.learning = _checkbox(fields, "learning")
    for kind in ChannelKind:
        wanted = _checkbox(fields, f"channel_{kind}")
        if wanted is not None:
            changes.channels_on[kind] = wanted
    changes.new_channel, new_errors = _new_channel(fields, subscriber, sms_countries)
    errors.update(new_errors)
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
    """Save the changes (all but a new channel); returns notes for the person (what
    could not be done)."""
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
        set_zone(session, subscriber, changes.timezone, now)
    if changes.discreet is not None:
        subscriber.discreet = changes.discreet
    if changes.learning is not None:
        subscriber.experiment_opt_out = not changes.learning
    if changes.pause_days is not None:
        subscriber.paused_until = (
            now + timedelta(days=changes.pause_days) if changes.pause_days > 0 else None
        )
        replan = True
    for channel in confirmed_channels(subscriber, own_channel):
        wanted = changes.channels_on.get(channel.kind)
        if wanted is None:
            continue
        if not wanted and channel.status == ChannelStatus.ACTIVE:
            subscriptions.stop(session, channel, SOURCE, hasher, now)
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


def admit_channel(
    new_channel: tuple[ChannelKind, str],
    *,
    client: str,
    signups: SignupGuard,
    now: datetime,
) -> bool:
    """Whether asking this address to join is within the signup limits (counted as a
    signup). The asking itself is `ask_to_join`, after the page has answered."""
    kind, address = new_channel
    attempt = SignupAttempt(
        client,
        address if kind == ChannelKind.SMS else None,
        address if kind == ChannelKind.EMAIL else None,
    )
    return signups.admit(attempt, now) is None


def ask_to_join(
    session: Session,
    owner_id: int,
    new_channel: tuple[ChannelKind, str],
    *,
    hasher: AddressHasher,
    now: datetime,
) -> int | None:
    """Ask the new address to join the person of channel `owner_id`; the id of the
    confirmation to send, if one was made.

    Runs after the page's answer has gone (as a signup does): a number nobody has
    takes more work here (a person of its own, a confirmation) than a known one,
    and the answer's timing must not tell whether someone already uses Steady.
    """
    channel = session.get(Channel, owner_id)
    if channel is None:
        return None
    kind, address = new_channel
    join = subscriptions.SignupRequest(
        phone=address if kind == ChannelKind.SMS else None,
        email=address if kind == ChannelKind.EMAIL else None,
        timezone=channel.subscriber.timezone,
        consent_method=SOURCE,
        consent_evidence={"source": SOURCE, "via_channel": channel.id},
        cadence_per_week=channel.subscriber.cadence_per_week,
    )
    message = subscriptions.request_join(session, channel, kind, address, join, hasher, now)
    if message is None:
        return None
    session.flush()
    return message.id


def confirmed_channels(subscriber: Subscriber, via: Channel) -> list[Channel]:
    """Confirmed channels a link of `via` may turn on and off: its own and those
    proven with it."""
    return [
        channel
        for channel in subscriptions.proven_channels(subscriber, via)
        if channel.confirmed_at is not None
        and channel.status in (ChannelStatus.ACTIVE, ChannelStatus.STOPPED)
    ]


def unreachable_channels(subscriber: Subscriber, via: Channel) -> list[Channel]:
    """Channels a link of `via` may show that we can no longer reach (suppressed)."""
    return [
        channel
        for channel in subscriptions.proven_channels(subscriber, via)
        if channel.status == ChannelStatus.SUPPRESSED
    ]


def cadence_choices(subscriber: Subscriber) -> list[int]:
    """The cadences offered: the usual ones, and theirs if it is another one."""
    return sorted({*CADENCE_CHOICES, subscriber.cadence_per_week})


def zone_choices(subscriber: Subscriber) -> ZoneChoices:
    """The common zones, the person's own if it is another one, and while it is only a
    guess, no zone selected and the zones their number may be in."""
    options = dict(COMMON_ZONES)
    candidates = split_zones(subscriber.timezone_candidates)
    if not candidates and subscriber.timezone not in options:
        options = {subscriber.timezone: subscriber.timezone, **options}
    return ZoneChoices(
        options=list(options.items()),
        selected="" if candidates else subscriber.timezone,
        candidates=[zone_city(zone) for zone in candidates],
    )
