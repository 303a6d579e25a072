"""Operator review (PRODUCT.md "Safety", INTERFACE.md §2): flagged people and texts
Steady did not understand, each with the recent thread; one written reply; clearing.

What is listed:
- every subscriber flagged by words of crisis (reason ``crisis``), with the text that
  flagged them; flags for other reasons (carrier filtering) stay on the dashboard;
- every text from a subscriber that the grammar did not understand and no operator
  has cleared yet (reason ``unrecognised``), from the last ``UNRECOGNISED_DAYS``.

An operator's reply is one SMS of kind ``operator``: a message row the dispatcher
sends like any other, never a nudge (never counted against cadence, caps or
spacing), due at once when the person texted in the last 24 hours (the window in
which an answer is expected) and else at the next opening of their sending window.
Clearing takes the flag off, marks their listed texts reviewed, and plans again.
Addresses are masked; the thread shows bodies, since reading them is the point.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from service.addresses import mask
from service.channels import ChannelKind
from service.messages.catalog import OPERATOR_TEMPLATE, Kind
from service.messages.compose import sms_context
from service.messages.content import Content
from service.messages.lifecycle import PRIORITY_NOW
from service.messages.safety_lines import country_of
from service.messages.segments import count_segments
from service.pacing.rules import PacingPolicy
from service.pacing.window import (
    NoSharedWindow,
    earliest_in_window,
    sending_zones,
    split_zones,
    window_hours,
)
from service.settings import Settings
from service.storage.models import (
    Channel,
    ChannelStatus,
    InboundMessage,
    Message,
    Subscriber,
)

log = structlog.get_logger(__name__)

CRISIS_FLAG_REASON = "crisis_words"  # Subscriber.flag_reason when crisis words flagged them
UNRECOGNISED_COMMAND = "unknown"  # InboundMessage.command of a text the grammar missed
CRISIS_COMMAND = "crisis"
UNRECOGNISED_DAYS = 30
REPLY_AT_ONCE_WITHIN = timedelta(hours=24)  # they texted lately: an answer is expected now
THREAD_LENGTH = 12  # messages each way, merged: enough to read the moment, not a history
MAX_ITEMS = 500
MAX_REPLY_SEGMENTS = 3
OPERATOR_RULE = "operator_reply"

Reason = Literal["crisis", "unrecognised"]


class ReviewError(Exception):
    """The request cannot be carried out; `status` is the HTTP answer it deserves."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ThreadEntry:
    direction: Literal["in", "out"]
    at: datetime
    body: str | None  # a nudge keeps no body (it renders at send time): see `template`
    kind: str | None = None
    template: str | None = None
    status: str | None = None


@dataclass(frozen=True)
class ReviewItem:
    subscriber_id: int
    reason: Reason
    received_at: datetime
    body: str
    inbound_id: int | None
    flagged_at: datetime | None
    country: str | None = None  # whose safety lines they got: their number's, else their zone's
    channels: list[dict[str, str]] = field(default_factory=list)
    thread: list[ThreadEntry] = field(default_factory=list)


def review_items(session: Session, now: datetime, *, limit: int = MAX_ITEMS) -> list[ReviewItem]:
    """Flagged people first (latest flag first), then unrecognised texts (latest first)."""
    items = [*_flagged_items(session, limit), *_unrecognised_items(session, now, limit)][:limit]
    subscribers = {
        s.id: s
        for s in session.scalars(
            select(Subscriber)
            .options(selectinload(Subscriber.channels))
            .where(Subscriber.id.in_({item.subscriber_id for item in items}))
        )
    }
    threads: dict[int, list[ThreadEntry]] = {}
    for item in items:
        if item.subscriber_id not in threads:
            threads[item.subscriber_id] = thread(session, item.subscriber_id)
        subscriber = subscribers[item.subscriber_id]
        item.channels.extend(_channels(subscriber))
        item.thread.extend(threads[item.subscriber_id])
    return [replace(item, country=_country(subscribers[item.subscriber_id])) for item in items]


def _country(subscriber: Subscriber) -> str | None:
    phone = next((c.address for c in subscriber.channels if c.kind == ChannelKind.SMS), None)
    return country_of(phone, subscriber.timezone)


def _flagged_items(session: Session, limit: int) -> list[ReviewItem]:
    flagged = session.scalars(
        select(Subscriber)
        .where(Subscriber.flagged_at.is_not(None), Subscriber.flag_reason == CRISIS_FLAG_REASON)
        .order_by(Subscriber.flagged_at.desc(), Subscriber.id.desc())
        .limit(limit)
    ).all()
    items = []
    for subscriber in flagged:
        assert subscriber.flagged_at is not None  # the query's own condition
        text = session.scalars(
            select(InboundMessage)
            .where(
                InboundMessage.subscriber_id == subscriber.id,
                InboundMessage.command == CRISIS_COMMAND,
            )
            .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
            .limit(1)
        ).first()
        items.append(
            ReviewItem(
                subscriber_id=subscriber.id,
                reason="crisis",
                received_at=text.received_at if text is not None else subscriber.flagged_at,
                body=text.body if text is not None else "",
                inbound_id=text.id if text is not None else None,
                flagged_at=subscriber.flagged_at,
            )
        )
    return items


def _unrecognised_items(session: Session, now: datetime, limit: int) -> list[ReviewItem]:
    rows = session.execute(
        select(InboundMessage, Subscriber.flagged_at)
        .join(Subscriber, Subscriber.id == InboundMessage.subscriber_id)
        .where(
            InboundMessage.command == UNRECOGNISED_COMMAND,
            InboundMessage.reviewed_at.is_(None),
            InboundMessage.received_at >= now - timedelta(days=UNRECOGNISED_DAYS),
        )
        .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
        .limit(limit)
    ).all()
    return [
        ReviewItem(
            subscriber_id=inbound.subscriber_id,
            reason="unrecognised",
            received_at=inbound.received_at,
            body=inbound.body,
            inbound_id=inbound.id,
            flagged_at=flagged_at,
        )
        for inbound, flagged_at in rows
        if inbound.subscriber_id is not None
    ]


def _channels(subscriber: Subscriber) -> list[dict[str, str]]:
    return [
        {"kind": c.kind, "address": mask(c.address), "status": c.status}
        for c in subscriber.channels
    ]


def thread(session: Session, subscriber_id: int) -> list[ThreadEntry]:
    """The latest texts both ways, oldest first; addresses never appear in it."""
    inbound = session.scalars(
        select(InboundMessage)
        .where(InboundMessage.subscriber_id == subscriber_id)
        .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
        .limit(THREAD_LENGTH)
    ).all()
    outbound = session.scalars(
        select(Message)
        .where(Message.subscriber_id == subscriber_id)
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(THREAD_LENGTH)
    ).all()
    # Sorted by time; at one instant a text comes before the reply it caused.
    keyed = [((m.received_at, 0, m.id), ThreadEntry("in", m.received_at, m.body)) for m in inbound]
    for m in outbound:
        at = m.sent_at or m.scheduled_for
        entry = ThreadEntry("out", at, m.body, kind=m.kind, template=m.template, status=m.status)
        keyed.append(((at, 1, m.id), entry))
    keyed.sort(key=lambda pair: pair[0])
    return [entry for _, entry in keyed][-THREAD_LENGTH:]


# --- acting on it -----------------------------------------------------------------------


@dataclass(frozen=True)
class OperatorReply:
    message_id: int
    scheduled_for: datetime
    at_once: bool


def send_operator_reply(
    session: Session,
    settings: Settings,
    content: Content,
    policy: PacingPolicy,
    subscriber_id: int,
    body: str,
    now: datetime,
) -> OperatorReply:
    """Queue one operator-written SMS for the dispatcher; ReviewError when it cannot go."""
    text = " ".join(body.split())
    if not text:
        raise ReviewError(422, "the reply is empty")
    subscriber = _subscriber(session, subscriber_id)
    sms = next((c for c in subscriber.channels if c.kind == ChannelKind.SMS), None)
    if sms is None:
        raise ReviewError(422, "this subscriber has no phone number")
    if sms.status != ChannelStatus.ACTIVE:
        raise ReviewError(422, f"their SMS channel is {sms.status}: no text can go to it")
    context = sms_context(
        settings, discreet=subscriber.discreet, cadence_per_week=subscriber.cadence_per_week
    )
    rendered = content.sms(OPERATOR_TEMPLATE, {**context, "body": text})
    if count_segments(rendered) > MAX_REPLY_SEGMENTS:
        raise ReviewError(422, f"the reply is longer than {MAX_REPLY_SEGMENTS} SMS segments")
    at_once = _texted_lately(session, subscriber_id, now)
    due = now if at_once else _next_window_opening(subscriber, now, policy)
    message = Message(
        subscriber_id=subscriber.id,
        channel_id=sms.id,
        channel=sms.kind,
        kind=Kind.OPERATOR,
        template=OPERATOR_TEMPLATE,
        rule=OPERATOR_RULE,
        body=rendered,
        priority=PRIORITY_NOW,
        scheduled_for=due,
        created_at=now,
        updated_at=now,
    )
    session.add(message)
    session.flush()
    log.info(
        "operator_reply_queued",
        subscriber_id=subscriber.id,
        message_id=message.id,
        at_once=at_once,
    )
    return OperatorReply(message.id, due, at_once)


def clear_flag(session: Session, subscriber_id: int, now: datetime) -> None:
    """Take the flag off, mark their listed texts reviewed, and plan again now."""
    subscriber = _subscriber(session, subscriber_id)
    was = subscriber.flag_reason
    subscriber.flagged_at = None
    subscriber.flag_reason = None
    subscriber.next_plan_at = now
    session.execute(
        update(InboundMessage)
        .where(
            InboundMessage.subscriber_id == subscriber_id,
            InboundMessage.reviewed_at.is_(None),
            InboundMessage.command.in_((UNRECOGNISED_COMMAND, CRISIS_COMMAND)),
        )
        .values(reviewed_at=now)
    )
    log.info("flag_cleared", subscriber_id=subscriber_id, was=was)


def _subscriber(session: Session, subscriber_id: int) -> Subscriber:
    subscriber = session.scalar(
        select(Subscriber)
        .options(selectinload(Subscriber.channels))
        .where(Subscriber.id == subscriber_id)
    )
    if subscriber is None:
        raise ReviewError(404, "no such subscriber")
    return subscriber


def _texted_lately(session: Session, subscriber_id: int, now: datetime) -> bool:
    latest = session.scalar(
        select(InboundMessage.received_at)
        .join(Channel, Channel.id == InboundMessage.channel_id)
        .where(InboundMessage.subscriber_id == subscriber_id, Channel.kind == ChannelKind.SMS)
        .order_by(InboundMessage.received_at.desc())
        .limit(1)
    )
    return latest is not None and now - latest <= REPLY_AT_ONCE_WITHIN


def _next_window_opening(subscriber: Subscriber, now: datetime, policy: PacingPolicy) -> datetime:
    """Now if their sending window is open, else when it next opens (their own hours).

    Until they name a zone, the window is the one shared by every zone they may be
    in; if those share no hours, their best-guess zone's window is the fallback.
    """
    hours = window_hours((subscriber.hour_start, subscriber.hour_end), policy)
    candidates = split_zones(subscriber.timezone_candidates)
    try:
        return earliest_in_window(now, sending_zones(subscriber.timezone, candidates), *hours)
    except NoSharedWindow:
        return earliest_in_window(now, sending_zones(subscriber.timezone), *hours)
