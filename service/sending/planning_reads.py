"""What a planning batch reads, for both planners: the v1 planner
(`service.sending.planner`) and the decision grid (`service.sending.decisions`).

Each read is one set-based query over the batch's subscriber ids, run on the session's
connection (Core rows: the ORM's row loading cost more than the rows' own conversion),
fetched all at once (row by row, the driver's per-fetch checks cost as much again).
On PostgreSQL the ids go as one array parameter (``= ANY(:ids)``, `bulkwrite.one_of`),
so the statement's text is the same for every batch: an ``IN`` list of 1,000 literals
had to be rendered by SQLAlchemy and split again by the driver each time, which cost the
planner more CPU than the query took to run (docs/performance.md).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal, cast

from sqlalchemy import DateTime, String, and_, func, or_, select, type_coerce
from sqlalchemy.orm import Session

from service.channels import ChannelKind
from service.messages.catalog import ACTIVITY_AREAS, NUDGE_KINDS, Kind
from service.messages.lifecycle import OUTSTANDING, PRIORITY_NUDGE, WENT_OUT
from service.pacing.rules import ContactEntry, PastNudge, SubscriberState
from service.pacing.window import split_zones
from service.storage.bulkwrite import one_of
from service.storage.models import Channel, ChannelStatus, ContactLog, Message, MessageStatus
from service.storage.models import Subscriber as SubscriberRow

Initiator = Literal["me", "them"]
NUDGE_KIND_VALUES = tuple(str(kind) for kind in NUDGE_KINDS)
_KINDS = {str(kind): kind for kind in Kind}
_CHANNELS = {str(kind): kind for kind in ChannelKind}

# An active channel of a person: (id, kind, confirmed at).
ActiveChannel = tuple[int, ChannelKind, datetime | None]

# What pacing needs of a person, and what the grid adds (crisis, opt-out, the point).
SUBSCRIBER_COLUMNS = (
    SubscriberRow.id,
    SubscriberRow.timezone,
    SubscriberRow.timezone_candidates,
    SubscriberRow.cadence_per_week,
    SubscriberRow.hour_start,
    SubscriberRow.hour_end,
    SubscriberRow.activity_areas,
    SubscriberRow.separation_date,
    SubscriberRow.paused_until,
    SubscriberRow.welcomed,
    SubscriberRow.last_engaged_at,
    SubscriberRow.last_done_at,
    SubscriberRow.flagged_at,
    SubscriberRow.experiment_opt_out,
    SubscriberRow.next_decision_at,
)


def _naive(column: Any) -> Any:
    """A UTC time column read as the driver gives it (naive UTC): the hottest loops make
    it aware themselves, without a type's per-value call around it."""
    return type_coerce(column, DateTime())


def subscribers(session: Session, ids: Sequence[int]) -> Sequence[Any]:
    """The batch's people (rows of ``SUBSCRIBER_COLUMNS``), in the database's order."""
    return (
        session.connection()
        .execute(select(*SUBSCRIBER_COLUMNS).where(one_of(session, SubscriberRow.id, ids)))
        .all()
    )


def active_channels(session: Session, ids: Sequence[int]) -> dict[int, ActiveChannel]:
    """The channel each subscriber's next nudge goes to: SMS first, else email."""
    chosen: dict[int, ActiveChannel] = {}
    rows = (
        session.connection()
        .execute(
            select(Channel.subscriber_id, Channel.id, Channel.kind, Channel.confirmed_at)
            .where(
                one_of(session, Channel.subscriber_id, ids), Channel.status == ChannelStatus.ACTIVE
            )
            .order_by(Channel.subscriber_id, Channel.id)
        )
        .all()
    )
    for subscriber_id, channel_id, kind, confirmed_at in rows:
        current = chosen.get(subscriber_id)
        if current is None or (kind == ChannelKind.SMS and current[1] != ChannelKind.SMS):
            chosen[subscriber_id] = (channel_id, kind, confirmed_at)
    return chosen


def outstanding(session: Session, ids: Sequence[int], now: datetime) -> set[int]:
    """People with a nudge still scheduled or in flight.

    An `unknown` nudge is outstanding too while it could still be sent again:
    reconciliation may find the provider never took it and reschedule it, and a
    second nudge planned meanwhile would make two. Past its expiry it can only
    settle as sent or expired, never go out again, so it stops holding the
    person's next nudge back (even if its provider cannot be asked for a while).
    """
    return set(
        session.connection().scalars(
            select(Message.subscriber_id).where(
                one_of(session, Message.subscriber_id, ids),
                or_(
                    Message.status.in_(OUTSTANDING),
                    and_(
                        Message.status == MessageStatus.UNKNOWN,
                        or_(Message.expires_at.is_(None), Message.expires_at > now),
                    ),
                ),
                Message.kind.in_(NUDGE_KIND_VALUES),
            )
        )
    )


def recent_nudges(
    session: Session, ids: Sequence[int], since: datetime
) -> tuple[dict[int, list[PastNudge]], dict[int, list[PastNudge]]]:
    """(nudges, replies) of the lookback that went out, per subscriber.

    Nudges count for timing and variants. Replies that carried a restraint or tip
    answer the person: they never count against cadence, caps or spacing
    (INTERFACE.md §4), but their templates still steer the next variant.
    """
    nudges: dict[int, list[PastNudge]] = defaultdict(list)
    replies: dict[int, list[PastNudge]] = defaultdict(list)
    rows = (
        session.connection()
        .execute(
            select(
                Message.subscriber_id,
                Message.kind,
                Message.template,
                type_coerce(Message.channel, String()),
                Message.priority,
                func.coalesce(_naive(Message.sent_at), _naive(Message.scheduled_for)),
            ).where(
                one_of(session, Message.subscriber_id, ids),
                Message.created_at >= since,
                Message.kind.in_(NUDGE_KIND_VALUES),
                Message.status.in_(WENT_OUT),
            )
        )
        .all()
    )
    kinds, channels = _KINDS, _CHANNELS
    for subscriber_id, kind, template, channel, priority, at in rows:
        if subscriber_id is None:
            continue
        target = nudges if priority == PRIORITY_NUDGE else replies
        # Positional: a frozen dataclass takes keywords at twice the cost (hot loop).
        target[subscriber_id].append(
            PastNudge(
                kinds[kind],
                template,
                channels.get(channel) or ChannelKind(channel),
                at.replace(tzinfo=UTC),
            )
        )
    return nudges, replies


def recent_contacts(
    session: Session, ids: Sequence[int], since: datetime
) -> dict[int, list[ContactEntry]]:
    """Each person's ME and THEM logs since ``since``."""
    contacts, _ = contacts_and_me_times(session, ids, since, None)
    return contacts


def contacts_and_me_times(
    session: Session,
    ids: Sequence[int],
    since: datetime,
    me_window: tuple[datetime, datetime] | None,
) -> tuple[dict[int, list[ContactEntry]], dict[int, list[datetime]]]:
    """(contact logs since ``since``, ME times in ``me_window``) per person, in one query.

    The grid needs both: the contacts for pacing, a longer stretch of ME for the person's
    risky hours (``service.sending.risky_patterns``).
    """
    contacts: dict[int, list[ContactEntry]] = defaultdict(list)
    mine: dict[int, list[datetime]] = defaultdict(list)
    start = since if me_window is None else min(since, me_window[0])
    rows = (
        session.connection()
        .execute(
            select(
                ContactLog.subscriber_id, ContactLog.initiator, _naive(ContactLog.occurred_at)
            ).where(one_of(session, ContactLog.subscriber_id, ids), ContactLog.occurred_at >= start)
        )
        .all()
    )
    first, last = me_window if me_window is not None else (None, None)
    for subscriber_id, initiator, naive in rows:
        occurred_at = naive.replace(tzinfo=UTC)
        if occurred_at >= since:
            # Positional: a frozen dataclass takes keywords at twice the cost (hot loop).
            contacts[subscriber_id].append(ContactEntry(cast(Initiator, initiator), occurred_at))
        if (
            first is not None
            and last is not None
            and initiator == "me"
            and first <= occurred_at <= last
        ):
            mine[subscriber_id].append(occurred_at)
    return contacts, mine


_AREAS: dict[str, tuple[str, ...]] = {}


def _areas(stored: str) -> tuple[str, ...]:
    """A person's chosen activity areas (all of them when none is chosen)."""
    found = _AREAS.get(stored)
    if found is None:
        chosen = tuple(a for a in stored.split(",") if a in ACTIVITY_AREAS)
        found = chosen or ACTIVITY_AREAS
        if len(_AREAS) < 4096:
            _AREAS[stored] = found
    return found


def pacing_state(
    sub: Any,
    channel: ActiveChannel | None,
    history: dict[int, list[PastNudge]],
    replies: dict[int, list[PastNudge]],
    contacts: dict[int, list[ContactEntry]],
) -> SubscriberState:
    """What pacing knows of one person of the batch (SMS when no channel is active)."""
    # Positional, in the order of SubscriberState's fields: a frozen dataclass of
    # sixteen fields takes keywords at twice the cost, once per person of every batch.
    return SubscriberState(
        sub.id,
        sub.timezone,
        channel[1] if channel is not None else ChannelKind.SMS,
        sub.cadence_per_week,
        (sub.hour_start, sub.hour_end),
        _areas(sub.activity_areas),
        sub.separation_date,
        sub.paused_until,
        channel[2] if channel is not None else None,
        sub.welcomed,
        sub.last_engaged_at,
        sub.last_done_at,
        tuple(history.get(sub.id, ())),
        tuple(replies.get(sub.id, ())),
        tuple(contacts.get(sub.id, ())),
        split_zones(sub.timezone_candidates),
    )


def claim_due_ids(
    session: Session,
    due_at: Any,
    now: datetime,
    limit: int,
    exclude: set[int] | None,
    *conditions: Any,
) -> list[int]:
    """The next batch of subscribers whose `due_at` column has come, longest due first.

    On PostgreSQL `FOR UPDATE SKIP LOCKED`: two planners (a second beat, a manual tick)
    take disjoint batches. `exclude` leaves out the ids a dry run has already looked at.
    """
    query = select(SubscriberRow.id).where(due_at <= now, *conditions).order_by(due_at).limit(limit)
    if exclude:
        query = query.where(SubscriberRow.id.not_in(exclude))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))
