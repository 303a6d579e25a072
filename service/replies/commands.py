"""What an active subscriber's commands do: log, undo, pause, pace, explain.

Each command takes a ``Turn`` (one text being acted on) and returns the ``Reply``
to send, or None for silence. ``service.replies.inbound`` decides who may run them
(active SMS subscribers only) and renders and records the reply.

Bursts (PRODUCT.md "Pacing v1": several logs within an hour get one calm reply).
The logging commands (ME, THEM, DONE) are always recorded, and within any rolling
hour (``BURST_WINDOW``) a subscriber gets at most one full logging reply and one
calm one. Exactly: if no logging reply went to them in the last hour, this log
gets its full reply (ME: confirmation + restraint; THEM: confirmation + tip; DONE:
acknowledgement); else, if no calm reply went in the last hour, it gets the calm
``reply_burst``; else no reply at all (an empty TwiML). UNDO, PAUSE and the rest
always answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.messages.catalog import NUDGE_KINDS, Kind
from service.messages.lifecycle import PRIORITY_NUDGE, WENT_OUT
from service.pacing.explanations import RULES
from service.pacing.rules import PacingPolicy
from service.pacing.variants import choose_restraint, choose_tip
from service.pacing.window import window_hours
from service.people import subscriptions
from service.people.zones.names import zone_label
from service.people.zones.places import zone_for_place
from service.people.zones.subscriber import set_zone
from service.replies.grammar import Intent
from service.replies.grammar_rows import Command
from service.storage.models import ActivityLog, ContactLog, Message, Subscriber

BURST_WINDOW = timedelta(hours=1)
LOG_REPLY_RULES = ("me_reply_restraint", "them_reply_tip", "done_logged")
BURST_RULE = "burst_calm"
PAUSE_DEFAULT_DAYS = 3  # INTERFACE.md §3: PAUSE [N], default 3
PAUSE_MIN_DAYS = 1
PAUSE_MAX_DAYS = 30  # a longer break is a STOP; START brings them back
CADENCE_STEPS = (3, 5, 7, 10, 14, 21)  # MORE / LESS move one step, within the policy's limits
CARRIED_LOOKBACK = timedelta(days=14)  # restraint / tip variants: least recently used in this
DONE_NOTE_CHARS = 160  # ActivityLog.note
DONE_ECHO_CHARS = 60  # how much of a DONE note the acknowledgement repeats
# How the confirmation names the medium: an email is "by email", never "by text".
MEDIUM_WORDS = {
    "text": " by text",
    "email": " by email",
    "call": " by phone",
    "voicemail": " by voicemail",
    "saw": " in person",
}
WHY_KINDS = tuple(str(kind) for kind in (*NUDGE_KINDS, Kind.TIP))

BurstState = Literal["full", "calm", "silent"]


@dataclass(frozen=True)
class Reply:
    """The one answer to a text: a template, plus a restraint or tip it carries."""

    template: str
    kind: Kind
    rule: str
    carried: str | None = None  # restraint / tip template appended to the confirmation
    context: Mapping[str, Any] = field(default_factory=dict)  # extra template variables


@dataclass(frozen=True)
class Turn:
    """One text from an active subscriber, being acted on."""

    session: Session
    subscriber: Subscriber
    intent: Intent
    inbound_id: int
    now: datetime


class SubscriberCommands:
    """ME, THEM, DONE, UNDO, PAUSE, RESUME, MORE, LESS and WHY for an active subscriber."""

    def __init__(self, policy: PacingPolicy) -> None:
        self.policy = policy
        self.cadence_steps = tuple(
            step
            for step in CADENCE_STEPS
            if policy.min_cadence_per_week <= step <= policy.max_cadence_per_week
        )

    def run(self, turn: Turn) -> Reply | None:
        """Act on the turn; anything outside the commands gets the short guide."""
        action = self._actions().get(turn.intent.command)
        return Reply("reply_guide", Kind.REPLY, "guide") if action is None else action(turn)

    def _actions(self) -> dict[Command, Callable[[Turn], Reply | None]]:
        from service.replies import learning  # its handlers take this module's Turn and Reply

        return {
            **learning.ACTIONS,
            Command.ME: self._log_contact,
            Command.THEM: self._log_contact,
            Command.DONE: self._log_done,
            Command.UNDO: self._undo,
            Command.PAUSE: self._pause,
            Command.RESUME: self._resume,
            Command.MORE: self._more,
            Command.LESS: self._less,
            Command.WHY: self._why,
            Command.ZONE: self._zone,
        }

    # --- logging ----------------------------------------------------------------------

    def _log_contact(self, turn: Turn) -> Reply | None:
        """ME / THEM: log it, re-plan, and answer with a restraint (ME) or a tip (THEM)."""
        sub, me = turn.subscriber, turn.intent.command == Command.ME
        turn.session.add(
            ContactLog(
                subscriber_id=sub.id,
                initiator="me" if me else "them",
                medium=turn.intent.medium,
                occurred_at=turn.now,
                created_at=turn.now,
                inbound_id=turn.inbound_id,
            )
        )
        # ME starts the restraint-first hold, THEM ends it: the queued nudge may be wrong now.
        subscriptions.cancel_pending_nudges(turn.session, sub.id, turn.now)
        state = _burst_state(turn)
        if state != "full":
            return _burst_reply(state)
        how: dict[str, Any] = {"how": MEDIUM_WORDS.get(turn.intent.medium or "", "")}
        recent = _recent_carried(turn)
        if me:
            restraint = choose_restraint(recent, sub.id)
            context = {**how, "mutual": turn.intent.mutual}
            return Reply(
                "reply_logged_me", Kind.RESTRAINT, "me_reply_restraint", restraint, context
            )
        tip = choose_tip(recent, sub.id)
        return Reply("reply_logged_them", Kind.TIP, "them_reply_tip", tip, how)

    def _log_done(self, turn: Turn) -> Reply | None:
        note = turn.intent.note[:DONE_NOTE_CHARS] if turn.intent.note else None
        turn.session.add(
            ActivityLog(
                subscriber_id=turn.subscriber.id,
                area=turn.intent.area,
                note=note,
                occurred_at=turn.now,
                inbound_id=turn.inbound_id,
            )
        )
        turn.subscriber.last_done_at = turn.now
        # A queued activity idea would come too soon after a DONE: plan again.
        subscriptions.cancel_pending_nudges(turn.session, turn.subscriber.id, turn.now)
        state = _burst_state(turn)
        if state != "full":
            return _burst_reply(state)
        echo = note[:DONE_ECHO_CHARS] if note else None
        return Reply("reply_done", Kind.REPLY, "done_logged", None, {"activity": echo})

    def _undo(self, turn: Turn) -> Reply:
        """Remove the latest log, contact or activity, and plan again without it."""
        session, sub = turn.session, turn.subscriber
        contact = session.scalars(
            select(ContactLog)
            .where(ContactLog.subscriber_id == sub.id)
            .order_by(ContactLog.created_at.desc(), ContactLog.id.desc())
            .limit(1)
        ).first()
        activity = session.scalars(
            select(ActivityLog)
            .where(ActivityLog.subscriber_id == sub.id)
            .order_by(ActivityLog.occurred_at.desc(), ActivityLog.id.desc())
            .limit(1)
        ).first()
        if contact is not None and (
            activity is None
            or (contact.created_at, contact.inbound_id or 0)
            >= (activity.occurred_at, activity.inbound_id or 0)
        ):
            removed = "you got in touch" if contact.initiator == "me" else "they got in touch"
            session.delete(contact)
        elif activity is not None:
            removed = "an activity"
            session.delete(activity)
            session.flush()
            sub.last_done_at = session.scalar(
                select(func.max(ActivityLog.occurred_at)).where(ActivityLog.subscriber_id == sub.id)
            )
        else:
            return Reply("reply_undo_none", Kind.REPLY, "undo")
        session.flush()
        subscriptions.cancel_pending_nudges(session, sub.id, turn.now)
        return Reply("reply_undo", Kind.REPLY, "undo", None, {"removed": removed})

    # --- pace -------------------------------------------------------------------------

    def _pause(self, turn: Turn) -> Reply:
        sub = turn.subscriber
        asked = turn.intent.days if turn.intent.days is not None else PAUSE_DEFAULT_DAYS
        days = min(max(asked, PAUSE_MIN_DAYS), PAUSE_MAX_DAYS)
        until = turn.now + timedelta(days=days)
        sub.paused_until = until
        subscriptions.cancel_pending_nudges(turn.session, sub.id, turn.now)
        if sub.flagged_at is None:
            # Plan again when the pause ends: that is what makes it resume by itself.
            sub.next_plan_at = until
        local = until.astimezone(ZoneInfo(sub.timezone))
        when = f"{local:%a %b} {local.day}, {local.hour % 12 or 12}:{local:%M %p}"
        return Reply("reply_paused", Kind.REPLY, "paused", None, {"days": days, "until": when})

    def _resume(self, turn: Turn) -> Reply:
        turn.subscriber.paused_until = None
        subscriptions.cancel_pending_nudges(turn.session, turn.subscriber.id, turn.now)
        return Reply("reply_resumed_early", Kind.REPLY, "resumed_early")

    def _more(self, turn: Turn) -> Reply:
        higher = [s for s in self.cadence_steps if s > turn.subscriber.cadence_per_week]
        if not higher:
            return Reply("reply_pace_max", Kind.REPLY, "cadence_max")
        turn.subscriber.cadence_per_week = higher[0]
        subscriptions.cancel_pending_nudges(turn.session, turn.subscriber.id, turn.now)
        return Reply("reply_more", Kind.REPLY, "cadence_more")

    def _less(self, turn: Turn) -> Reply:
        lower = [s for s in self.cadence_steps if s < turn.subscriber.cadence_per_week]
        if not lower:
            return Reply("reply_pace_min", Kind.REPLY, "cadence_min")
        turn.subscriber.cadence_per_week = lower[-1]
        subscriptions.cancel_pending_nudges(turn.session, turn.subscriber.id, turn.now)
        return Reply("reply_less", Kind.REPLY, "cadence_less")

    def _why(self, turn: Turn) -> Reply:
        """The rule behind the latest nudge that went out (INTERFACE.md §3: "why the
        last nudge came"); replies are answers, not nudges, so they are not explained."""
        rule = turn.session.scalar(
            select(Message.rule)
            .where(
                Message.subscriber_id == turn.subscriber.id,
                Message.kind.in_(WHY_KINDS),
                Message.priority == PRIORITY_NUDGE,
                Message.status.in_(WENT_OUT),
            )
            .order_by(
                func.coalesce(Message.sent_at, Message.scheduled_for).desc(), Message.id.desc()
            )
            .limit(1)
        )
        why = RULES.get(rule) if rule is not None else None
        return Reply("reply_why", Kind.REPLY, "why", None, {"why": why})

    # --- time zone --------------------------------------------------------------------

    def _zone(self, turn: Turn) -> Reply:
        """ZONE <place>: the person names their zone; the reply names it and the hours."""
        zone = zone_for_place(turn.intent.place or "")
        if zone is None:
            return Reply("reply_zone_unknown", Kind.REPLY, "zone_unknown")
        sub = turn.subscriber
        set_zone(turn.session, sub, zone, turn.now)
        start, end = window_hours((sub.hour_start, sub.hour_end), self.policy)
        hours = f"{_clock_hour(start)} and {_clock_hour(end)}"
        return Reply(
            "reply_zone",
            Kind.REPLY,
            "zone_set",
            None,
            {"zone": zone_label(zone), "hours": hours},
        )

    # --- the reply --------------------------------------------------------------------


def _burst_state(turn: Turn) -> BurstState:
    """Where this log falls in the subscriber's last hour of replies (module docstring)."""
    rules = set(
        turn.session.scalars(
            select(Message.rule).where(
                Message.subscriber_id == turn.subscriber.id,
                Message.rule.in_((*LOG_REPLY_RULES, BURST_RULE)),
                Message.created_at > turn.now - BURST_WINDOW,
            )
        )
    )
    if not rules:
        return "full"
    return "silent" if BURST_RULE in rules else "calm"


def _recent_carried(turn: Turn) -> list[str]:
    """Restraint and tip templates this person saw lately, oldest first."""
    return list(
        turn.session.scalars(
            select(Message.template)
            .where(
                Message.subscriber_id == turn.subscriber.id,
                Message.kind.in_((str(Kind.RESTRAINT), str(Kind.TIP))),
                Message.created_at >= turn.now - CARRIED_LOOKBACK,
            )
            .order_by(Message.created_at, Message.id)
        )
    )


def _clock_hour(hour: int) -> str:
    """8 -> "8am", 20 -> "8pm", 12 -> "noon", 24 -> "midnight"."""
    if hour % 24 == 0:
        return "midnight"
    if hour == 12:
        return "noon"
    return f"{hour % 12}{'am' if hour < 12 else 'pm'}"


def _burst_reply(state: BurstState) -> Reply | None:
    return Reply("reply_burst", Kind.REPLY, BURST_RULE) if state == "calm" else None
