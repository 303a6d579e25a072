"""URGE, STATS and the answers to the daily question (INTERFACE.md §3, PRODUCT.md
"Learning what helps"), for an active SMS subscriber.

* URGE (or "I'm about to text him"): the reply carries a restraint message at once
  (kind ``restraint``, a reply: it goes in the TwiML answer and never counts as a nudge).
* STATS: days since they last reached out (by their local dates), the contacts both ways
  and the activities they logged over the last 14 days, in one SMS.
* The daily question (kind ``survey``) is open for ``SURVEY_OPEN`` after it went out, until
  answered. While it is open a plain YES (and "yes I did") is the answer Y, "no" the answer
  N; the inbound text is marked ``survey_yes`` / ``survey_no``, which the outcome of each
  decision reads (service.reporting.decision_log). Y carries a restraint message, as the
  reply to ME does. Outside an open question, N or "yes I did" get the short guide.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.messages.catalog import Kind
from service.messages.lifecycle import WENT_OUT
from service.pacing.variants import choose_restraint
from service.replies.commands import CARRIED_LOOKBACK, Reply, Turn
from service.replies.grammar_rows import Command
from service.storage.models import (
    SURVEY_NO,
    SURVEY_YES,
    ActivityLog,
    ContactLog,
    InboundMessage,
    Message,
)

STATS_PERIOD = timedelta(days=14)
SURVEY_OPEN = timedelta(hours=12)


def urge(turn: Turn) -> Reply:
    restraint = choose_restraint(_recent_restraints(turn), turn.subscriber.id)
    return Reply("reply_urge", Kind.RESTRAINT, "urge_reply", restraint)


def stats(turn: Turn) -> Reply:
    session, sub, now = turn.session, turn.subscriber, turn.now
    since = now - STATS_PERIOD
    by_initiator = Counter(
        dict(
            session.execute(
                select(ContactLog.initiator, func.count())
                .where(ContactLog.subscriber_id == sub.id, ContactLog.occurred_at > since)
                .group_by(ContactLog.initiator)
            ).all()
        )
    )
    activities = session.scalar(
        select(func.count()).where(
            ActivityLog.subscriber_id == sub.id, ActivityLog.occurred_at > since
        )
    )
    last_me = _last_reached_out(session, sub.id)
    days = None
    if last_me is not None:
        zone = ZoneInfo(sub.timezone)
        days = (now.astimezone(zone).date() - last_me.astimezone(zone).date()).days
    context = {
        "days_since_me": days,
        "me": by_initiator.get("me", 0),
        "them": by_initiator.get("them", 0),
        "done": int(activities or 0),
    }
    return Reply("reply_stats", Kind.REPLY, "stats", None, context)


def _last_reached_out(session: Session, subscriber_id: int) -> datetime | None:
    logged = session.scalar(
        select(func.max(ContactLog.occurred_at)).where(
            ContactLog.subscriber_id == subscriber_id, ContactLog.initiator == "me"
        )
    )
    answered = session.scalar(
        select(func.max(InboundMessage.received_at)).where(
            InboundMessage.subscriber_id == subscriber_id, InboundMessage.command == SURVEY_YES
        )
    )
    marks = [at for at in (logged, answered) if at is not None]
    return max(marks) if marks else None


def survey_open(session: Session, subscriber_id: int, now: datetime) -> bool:
    """Whether a daily question went out within SURVEY_OPEN and is still unanswered."""
    asked = session.scalar(
        select(func.max(Message.sent_at)).where(
            Message.subscriber_id == subscriber_id,
            Message.kind == str(Kind.SURVEY),
            Message.status.in_(WENT_OUT),
            Message.sent_at > now - SURVEY_OPEN,
            Message.sent_at <= now,
        )
    )
    if asked is None:
        return False
    answered = session.scalar(
        select(func.count()).where(
            InboundMessage.subscriber_id == subscriber_id,
            InboundMessage.command.in_((SURVEY_YES, SURVEY_NO)),
            InboundMessage.received_at >= asked,
        )
    )
    return not answered


def survey_answer(turn: Turn, *, reached_out: bool) -> Reply:
    if not survey_open(turn.session, turn.subscriber.id, turn.now):
        return Reply("reply_guide", Kind.REPLY, "guide")
    inbound = turn.session.get(InboundMessage, turn.inbound_id)
    if inbound is not None:
        inbound.command = SURVEY_YES if reached_out else SURVEY_NO
    if not reached_out:
        return Reply("reply_survey_no", Kind.REPLY, "survey_no")
    restraint = choose_restraint(_recent_restraints(turn), turn.subscriber.id)
    return Reply("reply_survey_yes", Kind.RESTRAINT, "survey_yes", restraint)


def _recent_restraints(turn: Turn) -> list[str]:
    """Restraint templates this person saw lately, oldest first (none repeats soon)."""
    return list(
        turn.session.scalars(
            select(Message.template)
            .where(
                Message.subscriber_id == turn.subscriber.id,
                Message.kind == str(Kind.RESTRAINT),
                Message.created_at >= turn.now - CARRIED_LOOKBACK,
            )
            .order_by(Message.created_at, Message.id)
        )
    )


ACTIONS: dict[Command, Callable[[Turn], Reply | None]] = {
    Command.URGE: urge,
    Command.STATS: stats,
    Command.SURVEY_YES: lambda turn: survey_answer(turn, reached_out=True),
    Command.SURVEY_NO: lambda turn: survey_answer(turn, reached_out=False),
}
