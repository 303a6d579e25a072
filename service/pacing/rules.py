"""Pacing: when the next nudge goes, and what it says. Pure decisions, no I/O.

``plan_next(state, now)`` is a function of a subscriber's state and the time only:
no database, no settings, no clock reads, no randomness. The rules (PRODUCT.md,
"Pacing v1" and "Delivery feedback"); every limit is a field of ``PacingPolicy``.

When (``_schedule``; the arithmetic lives in ``service.pacing.window``)
    1. Cadence: no sooner than ``cadence_gap`` after the latest recent nudge,
       counted in *window time* (time inside the sending windows): a week's window
       time / ``effective_cadence``, so 21 a week is 3 a day, 4 h apart in 08-20,
       and 7 a week is the same wall time the next day. Never less than
       ``min_spacing`` after it, never before ``now`` or ``paused_until``.
    2. Spacing: at least ``min_spacing`` (3 h) from every recent nudge, either channel.
    3. SMS cap: for SMS, no rolling 24 h may hold more than ``max_sms_per_24h`` SMS
       nudges once this one is added; otherwise wait until the oldest one that
       matters is 24 h old.
    4. Window: inside the local window ``[max(08, hours[0]), min(20, hours[1]))`` of
       its local date (the strictest US state rules, narrowed by the subscriber's
       own hours), else the next window opening. DST-safe (``pacing_window``).
       Until the subscriber names a zone, the window must hold in each of their
       ``candidate_zones`` at once; when those share no hours, ``plan_next`` raises
       ``NoSharedWindow`` and nothing is planned.
    Steps 2-4 repeat until all hold at once; each only moves the time later.
    ``expires_at = min(scheduled_for + expiry_grace, closing of that window)``.

What (``_choose``), first matching rule wins
    1. ``welcome``: no welcome went out yet.
    2. ``quiet_checkin``: no engagement (reply, DONE, click) for ``quiet_period``
       since the later of ``last_engaged_at`` and ``active_since``, and no check-in
       since then: one check-in. Quiet also halves the cadence (floor 1 a week).
       Only the first ``lookback`` of a quiet spell is checked, since that is all
       ``recent_nudges`` can show; so a spell gets one check-in, not one a fortnight.
    3. ``restraint_after_me``: the latest contact log is ME, less than
       ``restraint_hold`` ago, so restraint only; activities are held.
    4. ``one_sided_restraint``: over ``lookback``, ME >= 3 and ME >= 2 x THEM, so
       restraint unless the last two nudges already were (2 of every 3 slots).
    5. ``early_patience``: in the first ``patience_phase`` after the separation
       date, every other nudge is patience.
    6. The normal mix, read from the latest nudges: activity, restraint, activity,
       patience... (``activity_rotation``, ``restraint_mix``, ``patience_mix``).
       Activities take the chosen areas in turn, never repeat a template within
       ``lookback``, and rest for ``activity_rest_after_done`` after a DONE; when
       none can go, a reminder goes instead (``rest_after_done``, ``activity_rested``).
    Variants within a kind (`service.pacing.variants`): least recently used, unused
    ones first, ties broken by an offset from the subscriber id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from service.channels import ChannelKind
from service.messages.catalog import (
    CHECKIN_TEMPLATE,
    DEFAULT_ACTIVITY_AREAS,
    WELCOME_TEMPLATE,
    Kind,
)
from service.pacing.spread import spread_in_window
from service.pacing.variants import choose_activity, choose_patience, choose_restraint
from service.pacing.window import (
    Zones,
    add_window_time,
    daily_window_time,
    local_wall_time,
    require_aware,
    sending_zones,
    settle_in_window,
    window_closing_for,
    window_hours,
)

# Quiet subscribers get half their cadence, but never less than one nudge a week.
QUIET_CADENCE_FLOOR = 1.0


@dataclass(frozen=True)
class PacingPolicy:
    """Every pacing limit (PRODUCT.md, "Pacing v1"); each is a setting elsewhere."""

    window_start_hour: int = 8  # 08:00 local, the legal sending window (strictest US state rules)
    window_end_hour: int = 20  # 20:00 local
    max_sms_per_24h: int = 3  # rolling 24 h, nudges only
    min_spacing: timedelta = timedelta(hours=3)
    expiry_grace: timedelta = timedelta(hours=2)
    restraint_hold: timedelta = timedelta(hours=72)
    lookback: timedelta = timedelta(days=14)  # one-sidedness, template repeats
    patience_phase: timedelta = timedelta(days=14)
    quiet_period: timedelta = timedelta(days=14)  # engagement fatigue
    activity_rest_after_done: timedelta = timedelta(hours=24)
    min_cadence_per_week: int = 3
    max_cadence_per_week: int = 21
    # Nudges that pacing puts at a window's opening or at `now` are spread over
    # this much of the window, per subscriber (``service.pacing.spread``); 0 = off.
    spread: timedelta = timedelta(0)


@dataclass(frozen=True)
class PastNudge:
    """A nudge already sent, or scheduled and not cancelled. Never an immediate reply."""

    kind: Kind
    template: str
    channel: ChannelKind
    at: datetime  # tz-aware UTC: when it went out (or its scheduled time)


@dataclass(frozen=True)
class ContactEntry:
    """One ME / THEM contact log."""

    initiator: Literal["me", "them"]
    at: datetime  # tz-aware UTC


@dataclass(frozen=True)
class SubscriberState:
    """Everything pacing needs to know about one subscriber."""

    subscriber_id: int
    timezone: str  # IANA: the named zone, else the best guess (local dates, display)
    channel: ChannelKind  # where the next nudge goes
    cadence_per_week: int  # 3..21, default 7
    hours: tuple[int, int] = (8, 20)  # own hours (start, end): narrows the legal window only
    activity_areas: tuple[str, ...] = DEFAULT_ACTIVITY_AREAS
    separation_date: date | None = None
    paused_until: datetime | None = None
    active_since: datetime | None = None  # when the channel was confirmed (tz-aware UTC)
    welcomed: bool = False  # a welcome nudge already went out
    last_engaged_at: datetime | None = None  # last reply / DONE / click
    last_done_at: datetime | None = None  # last DONE (activity logged)
    recent_nudges: tuple[PastNudge, ...] = ()  # at least the last `lookback` of them
    # Replies that carried a restraint or tip: only for choosing variants, so the
    # next nudge does not repeat what a reply just said. Never for timing.
    recent_replies: tuple[PastNudge, ...] = ()
    contacts: tuple[ContactEntry, ...] = ()  # contact logs of the last `lookback`
    # IANA zones the subscriber may be in until they name one: nudges keep the hours
    # of every one of them. Empty when the zone is known.
    candidate_zones: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlannedNudge:
    """The next nudge: what, why, when, and when it stops being worth sending."""

    kind: Kind
    template: str
    rule: str  # a key of RULES
    scheduled_for: datetime  # tz-aware UTC
    expires_at: datetime  # tz-aware UTC


# The defaults of PRODUCT.md, "Pacing v1".
DEFAULT_POLICY = PacingPolicy()


# --- cadence and timing ---------------------------------------------------------------


def _engagement_anchor(state: SubscriberState) -> datetime | None:
    """The last sign of life: the later of the last engagement and the confirmation."""
    engaged, confirmed = state.last_engaged_at, state.active_since
    if engaged is None or confirmed is None:
        return confirmed if engaged is None else engaged
    return max(engaged, confirmed)


def _is_quiet(state: SubscriberState, now: datetime, policy: PacingPolicy) -> bool:
    anchor = _engagement_anchor(state)
    return anchor is not None and now - anchor >= policy.quiet_period


def effective_cadence(state: SubscriberState, now: datetime, policy: PacingPolicy) -> float:
    """Nudges per week: the subscriber's cadence, clamped, halved while quiet."""
    cadence = float(
        min(max(state.cadence_per_week, policy.min_cadence_per_week), policy.max_cadence_per_week)
    )
    if _is_quiet(state, now, policy):
        cadence = max(cadence / 2, QUIET_CADENCE_FLOOR)
    return cadence


def _zones(state: SubscriberState) -> Zones:
    return sending_zones(state.timezone, state.candidate_zones)


def cadence_gap(state: SubscriberState, now: datetime, policy: PacingPolicy) -> timedelta:
    """Sending-window time between two nudges: a week's window time / effective cadence.

    Counted in window time, not calendar time, so that "3 a day" means three in
    the day's window (a 24 h / 3 = 8 h calendar gap would fit only two in 08-20).
    """
    daily = daily_window_time(now, _zones(state), *window_hours(state.hours, policy))
    return 7 * daily / effective_cadence(state, now, policy)


def _earliest(state: SubscriberState, now: datetime, policy: PacingPolicy) -> datetime:
    earliest = now
    if state.recent_nudges:
        last = max(n.at for n in state.recent_nudges)
        after_cadence = add_window_time(
            last, cadence_gap(state, now, policy), _zones(state), *window_hours(state.hours, policy)
        )
        earliest = max(earliest, after_cadence, last + policy.min_spacing)
    if state.paused_until is not None:
        earliest = max(earliest, state.paused_until)
    return earliest


def _schedule(state: SubscriberState, now: datetime, policy: PacingPolicy) -> datetime:
    sms_sent = [n.at for n in state.recent_nudges if n.channel == ChannelKind.SMS]
    return settle_in_window(
        _earliest(state, now, policy),
        _zones(state),
        window_hours(state.hours, policy),
        spaced_from=[n.at for n in state.recent_nudges],
        min_spacing=policy.min_spacing,
        sms_sent=sms_sent if state.channel == ChannelKind.SMS else None,
        max_sms_per_24h=policy.max_sms_per_24h,
    )


def _choose_activity(
    history: Sequence[PastNudge], state: SubscriberState, at: datetime, policy: PacingPolicy
) -> str | None:
    """The next area in turn with a template unused in ``lookback``, or None."""
    used = [n.template for n in history if n.kind == Kind.ACTIVITY]
    recently_used = {
        n.template for n in history if n.kind == Kind.ACTIVITY and n.at > at - policy.lookback
    }
    return choose_activity(state.activity_areas, used, recently_used, state.subscriber_id)


# --- kind and template ----------------------------------------------------------------

_MIX_KINDS = frozenset({Kind.ACTIVITY, Kind.RESTRAINT, Kind.PATIENCE})


def _last_contact_is_recent_me(state: SubscriberState, at: datetime, policy: PacingPolicy) -> bool:
    if not state.contacts:
        return False
    # On a tie THEM counts as later: their move ends the hold.
    latest = max(state.contacts, key=lambda c: (c.at, c.initiator == "them"))
    return latest.initiator == "me" and at - latest.at < policy.restraint_hold


def _is_one_sided(state: SubscriberState, now: datetime, policy: PacingPolicy) -> bool:
    recent = [c for c in state.contacts if c.at > now - policy.lookback]
    mine = sum(1 for c in recent if c.initiator == "me")
    return mine >= 3 and mine >= 2 * (len(recent) - mine)


def _checkin_due(state: SubscriberState, now: datetime, policy: PacingPolicy) -> bool:
    anchor = _engagement_anchor(state)
    if anchor is None or not _is_quiet(state, now, policy):
        return False
    # Only the first `lookback` of a quiet spell can see whether its check-in went
    # (recent_nudges covers `lookback`); after that the spell had its one check-in.
    if now - anchor >= policy.quiet_period + policy.lookback:
        return False
    return not any(n.kind == Kind.CHECKIN and n.at >= anchor for n in state.recent_nudges)


def _in_patience_phase(state: SubscriberState, at: datetime, policy: PacingPolicy) -> bool:
    if state.separation_date is None:
        return False
    local_day = local_wall_time(at, ZoneInfo(state.timezone)).date()
    return timedelta(0) <= local_day - state.separation_date < policy.patience_phase


def _mix_kind(kinds: Sequence[Kind], early: bool) -> tuple[Kind, str]:
    """The next kind of the regular mix, read from the kinds of the latest nudges."""
    if early:
        # Patience every other nudge; the others alternate activity and restraint.
        if not kinds or kinds[-1] != Kind.PATIENCE:
            return Kind.PATIENCE, "early_patience"
        others = [k for k in kinds if k != Kind.PATIENCE]
        if others and others[-1] == Kind.ACTIVITY:
            return Kind.RESTRAINT, "restraint_mix"
        return Kind.ACTIVITY, "activity_rotation"
    # activity, restraint, activity, patience, ...
    if not kinds or kinds[-1] != Kind.ACTIVITY:
        return Kind.ACTIVITY, "activity_rotation"
    reminders = [k for k in kinds if k != Kind.ACTIVITY]
    if reminders and reminders[-1] == Kind.RESTRAINT:
        return Kind.PATIENCE, "patience_mix"
    return Kind.RESTRAINT, "restraint_mix"


def _reminder(kind: Kind, history: Sequence[PastNudge], subscriber_id: int) -> str:
    recent = [n.template for n in history]
    if kind == Kind.PATIENCE:
        return choose_patience(recent, subscriber_id)
    return choose_restraint(recent, subscriber_id)


def _choose(
    state: SubscriberState, now: datetime, at: datetime, policy: PacingPolicy
) -> tuple[Kind, str, str]:
    """Return ``(kind, template, rule)`` for a nudge going out at ``at``."""
    history = sorted(state.recent_nudges, key=lambda n: (n.at, n.template))
    said = sorted((*state.recent_nudges, *state.recent_replies), key=lambda n: (n.at, n.template))
    sid = state.subscriber_id
    # A welcome already scheduled counts: the flag is only set once it went out.
    if not state.welcomed and not any(n.kind == Kind.WELCOME for n in history):
        return Kind.WELCOME, WELCOME_TEMPLATE, "welcome"
    if _checkin_due(state, now, policy):
        return Kind.CHECKIN, CHECKIN_TEMPLATE, "quiet_checkin"
    if _last_contact_is_recent_me(state, at, policy):
        return Kind.RESTRAINT, _reminder(Kind.RESTRAINT, said, sid), "restraint_after_me"
    kinds = [n.kind for n in history if n.kind in _MIX_KINDS]
    if _is_one_sided(state, now, policy) and kinds[-2:] != [Kind.RESTRAINT, Kind.RESTRAINT]:
        return Kind.RESTRAINT, _reminder(Kind.RESTRAINT, said, sid), "one_sided_restraint"
    kind, rule = _mix_kind(kinds, early=_in_patience_phase(state, at, policy))
    if kind != Kind.ACTIVITY:
        return kind, _reminder(kind, said, sid), rule
    # An activity, unless a DONE is still sinking in or every idea was used recently.
    done_recently = (
        state.last_done_at is not None and at - state.last_done_at < policy.activity_rest_after_done
    )
    activity = None if done_recently else _choose_activity(history, state, at, policy)
    if activity is not None:
        return Kind.ACTIVITY, activity, rule
    instead = Kind.PATIENCE if kinds and kinds[-1] == Kind.RESTRAINT else Kind.RESTRAINT
    rested_rule = "rest_after_done" if done_recently else "activity_rested"
    return instead, _reminder(instead, said, sid), rested_rule


# --- the planner's entry point --------------------------------------------------------


def plan_next(
    state: SubscriberState, now: datetime, policy: PacingPolicy = DEFAULT_POLICY
) -> PlannedNudge:
    """Plan the subscriber's next nudge as of ``now`` (tz-aware).

    Raises ``NoSharedWindow`` when the subscriber's candidate zones share no hours.
    """
    require_aware(now, "now")
    now = now.astimezone(UTC)
    start_hour, end_hour = window_hours(state.hours, policy)
    zones = _zones(state)
    scheduled_for = spread_in_window(
        _schedule(state, now, policy).astimezone(UTC),
        now,
        zones,
        (start_hour, end_hour),
        state.subscriber_id,
        policy.spread,
    )
    closing = window_closing_for(scheduled_for, zones, start_hour, end_hour)
    kind, template, rule = _choose(state, now, scheduled_for, policy)
    return PlannedNudge(
        kind=kind,
        template=template,
        rule=rule,
        scheduled_for=scheduled_for,
        expires_at=min(scheduled_for + policy.expiry_grace, closing).astimezone(UTC),
    )
