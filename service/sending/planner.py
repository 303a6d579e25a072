"""The planner: turns due subscribers into scheduled message rows, in batches.

A subscriber is due when `next_plan_at <= now`. For each batch the planner reads
what pacing needs in a handful of set-based queries, asks the pure pacing
function for the next nudge, inserts all the rows in one statement and clears
`next_plan_at` in another. A person has at most one nudge outstanding; the
dispatcher sets `next_plan_at` again once it settles (sent, expired, failed),
and so does reconciliation for a nudge that was `unknown`.

A person whose candidate zones share no sending hours (PRODUCT.md, "Law") gets
no nudge: they are skipped until they name their zone, which plans them again.

Every subscriber it looks at gets one row in the decision log (policy "v1",
probability 1: the kind planned, or why nothing was). With STEADY_EXPERIMENT on,
`service.sending.decisions` plans at decision points instead; this planner first
hands anyone that pass left on its grid back to `next_plan_at`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import Select, and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from service.channels import ChannelKind
from service.messages.catalog import ACTIVITY_AREAS, NUDGE_KINDS, Kind
from service.messages.lifecycle import OUTSTANDING, PRIORITY_NUDGE, WENT_OUT
from service.pacing.experiment import v1_logged
from service.pacing.rules import (
    ContactEntry,
    PacingPolicy,
    PastNudge,
    PlannedNudge,
    SubscriberState,
    plan_next,
)
from service.pacing.window import NoSharedWindow, split_zones
from service.sending.bulk import decision_row, insert_decisions, insert_messages
from service.sending.grid import leave_grid
from service.storage.models import (
    Channel,
    ChannelStatus,
    ContactLog,
    Message,
    MessageStatus,
    Subscriber,
)

Initiator = Literal["me", "them"]

# An `unknown` nudge is outstanding too while it could still be sent again:
# reconciliation may find the provider never took it and reschedule it, and a
# second nudge planned meanwhile would make two. Past its expiry it can only
# settle as sent or expired, never go out again, so it stops holding the
# person's next nudge back (even if its provider cannot be asked for a while).
NUDGE_KIND_VALUES = tuple(str(kind) for kind in NUDGE_KINDS)


@dataclass
class PlanReport:
    planned: list[tuple[int, PlannedNudge, str]] = field(
        default_factory=list
    )  # (subscriber, plan, channel)
    skipped: int = 0

    @property
    def count(self) -> int:
        return len(self.planned)


def plan_due(
    sessions: sessionmaker[Session],
    policy: PacingPolicy,
    now: datetime,
    *,
    batch_size: int = 1000,
    max_batches: int | None = None,
    dry_run: bool = False,
) -> PlanReport:
    """Plan every due subscriber as of `now`, one committed batch at a time."""
    report = PlanReport()
    batches = 0
    seen: set[int] = set()
    if not dry_run:
        with sessions.begin() as session:
            leave_grid(session, now)
    while max_batches is None or batches < max_batches:
        with sessions() as session:
            ids = _claim_due_subscribers(
                session, now, batch_size, exclude=seen if dry_run else None
            )
            if not ids:
                break
            seen.update(ids)
            _plan_batch(session, ids, policy, now, report)
            if dry_run:
                session.rollback()
            else:
                session.commit()
        batches += 1
        if len(ids) < batch_size:
            break
    return report


def _claim_due_subscribers(
    session: Session, now: datetime, limit: int, exclude: set[int] | None
) -> list[int]:
    query: Select[int] = (
        select(Subscriber.id)
        .where(Subscriber.next_plan_at <= now, Subscriber.flagged_at.is_(None))
        .order_by(Subscriber.next_plan_at)
        .limit(limit)
    )
    if exclude:
        query = query.where(Subscriber.id.not_in(exclude))
    if session.get_bind().dialect.name == "postgresql":
        # Two planners (a second beat, a manual tick) take disjoint batches.
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))


def _plan_batch(
    session: Session, ids: Sequence[int], policy: PacingPolicy, now: datetime, report: PlanReport
) -> None:
    subscribers = session.execute(
        select(
            Subscriber.id,
            Subscriber.timezone,
            Subscriber.timezone_candidates,
            Subscriber.cadence_per_week,
            Subscriber.hour_start,
            Subscriber.hour_end,
            Subscriber.activity_areas,
            Subscriber.separation_date,
            Subscriber.paused_until,
            Subscriber.welcomed,
            Subscriber.last_engaged_at,
            Subscriber.last_done_at,
        ).where(Subscriber.id.in_(ids))
    ).all()
    channels = _active_channels(session, ids)
    outstanding = set(
        session.scalars(
            select(Message.subscriber_id).where(
                Message.subscriber_id.in_(ids),
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
    history, replies = _recent_nudges(session, ids, now - policy.lookback)
    contacts = _recent_contacts(session, ids, now - policy.lookback)

    rows: list[dict[str, Any]] = []
    logged: list[dict[str, Any]] = []  # the decision log: one row per subscriber looked at
    for sub in subscribers:
        channel = channels.get(sub.id)
        if channel is None or sub.id in outstanding:
            # Nothing to plan until a channel is confirmed or the open nudge settles.
            report.skipped += 1
            reason = "stopped" if channel is None else "outstanding"
            logged.append(decision_row(sub.id, v1_logged(now, None, reason)))
            continue
        channel_id, channel_kind, active_since = channel
        areas = tuple(a for a in sub.activity_areas.split(",") if a in ACTIVITY_AREAS)
        state = SubscriberState(
            subscriber_id=sub.id,
            timezone=sub.timezone,
            channel=channel_kind,
            cadence_per_week=sub.cadence_per_week,
            hours=(sub.hour_start, sub.hour_end),
            activity_areas=areas or ACTIVITY_AREAS,
            separation_date=sub.separation_date,
            paused_until=sub.paused_until,
            active_since=active_since,
            welcomed=sub.welcomed,
            last_engaged_at=sub.last_engaged_at,
            last_done_at=sub.last_done_at,
            recent_nudges=tuple(history.get(sub.id, ())),
            recent_replies=tuple(replies.get(sub.id, ())),
            contacts=tuple(contacts.get(sub.id, ())),
            candidate_zones=split_zones(sub.timezone_candidates),
        )
        try:
            plan = plan_next(state, now, policy)
        except NoSharedWindow:
            report.skipped += 1  # no hours fit every zone they may be in: wait for ZONE
            logged.append(decision_row(sub.id, v1_logged(now, None, "window")))
            continue
        report.planned.append((sub.id, plan, channel_kind))
        logged.append(decision_row(sub.id, v1_logged(now, plan, None)))
        rows.append(
            {
                "subscriber_id": sub.id,
                "channel_id": channel_id,
                "channel": channel_kind,
                "kind": str(plan.kind),
                "template": plan.template,
                "rule": plan.rule,
                "priority": PRIORITY_NUDGE,
                "status": MessageStatus.SCHEDULED,
                "scheduled_for": plan.scheduled_for,
                "expires_at": plan.expires_at,
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
        )
    message_ids = iter(insert_messages(session, rows))
    for row in logged:
        if row["chosen"] != "none":
            row["message_id"] = next(message_ids)
    insert_decisions(session, logged)
    welcomed = [row["subscriber_id"] for row in rows if row["kind"] == Kind.WELCOME]
    session.execute(
        update(Subscriber)
        .where(Subscriber.id.in_(ids))
        .values(
            next_plan_at=None,
            # The welcome goes once: mark those who were just planned one.
            welcomed=or_(Subscriber.welcomed, Subscriber.id.in_(welcomed))
            if welcomed
            else Subscriber.welcomed,
        )
        .execution_options(synchronize_session=False)
    )


def _active_channels(
    session: Session, ids: Sequence[int]
) -> dict[int, tuple[int, ChannelKind, datetime | None]]:
    """The channel each subscriber's next nudge goes to: SMS first, else email."""
    chosen: dict[int, tuple[int, ChannelKind, datetime | None]] = {}
    rows = session.execute(
        select(Channel.subscriber_id, Channel.id, Channel.kind, Channel.confirmed_at)
        .where(Channel.subscriber_id.in_(ids), Channel.status == ChannelStatus.ACTIVE)
        .order_by(Channel.subscriber_id, Channel.id)
    ).all()
    for subscriber_id, channel_id, kind, confirmed_at in rows:
        current = chosen.get(subscriber_id)
        if current is None or (kind == ChannelKind.SMS and current[1] != ChannelKind.SMS):
            chosen[subscriber_id] = (channel_id, kind, confirmed_at)
    return chosen


def _recent_nudges(
    session: Session, ids: Sequence[int], since: datetime
) -> tuple[dict[int, list[PastNudge]], dict[int, list[PastNudge]]]:
    """(nudges, replies) of the lookback that went out, per subscriber.

    Nudges count for timing and variants. Replies that carried a restraint or tip
    answer the person: they never count against cadence, caps or spacing
    (INTERFACE.md §4), but their templates still steer the next variant.
    """
    nudges: dict[int, list[PastNudge]] = defaultdict(list)
    replies: dict[int, list[PastNudge]] = defaultdict(list)
    rows = session.execute(
        select(
            Message.subscriber_id,
            Message.kind,
            Message.template,
            Message.channel,
            Message.priority,
            Message.sent_at,
            Message.scheduled_for,
        ).where(
            Message.subscriber_id.in_(ids),
            Message.created_at >= since,
            Message.kind.in_(NUDGE_KIND_VALUES),
            Message.status.in_(WENT_OUT),
        )
    ).all()
    for subscriber_id, kind, template, channel, priority, sent_at, scheduled_for in rows:
        if subscriber_id is None:
            continue
        target = nudges if priority == PRIORITY_NUDGE else replies
        target[subscriber_id].append(
            PastNudge(
                kind=Kind(kind),
                template=template,
                channel=channel,
                at=sent_at or scheduled_for,
            )
        )
    return nudges, replies


def _recent_contacts(
    session: Session, ids: Sequence[int], since: datetime
) -> dict[int, list[ContactEntry]]:
    contacts: dict[int, list[ContactEntry]] = defaultdict(list)
    rows = session.execute(
        select(ContactLog.subscriber_id, ContactLog.initiator, ContactLog.occurred_at).where(
            ContactLog.subscriber_id.in_(ids), ContactLog.occurred_at >= since
        )
    ).all()
    for subscriber_id, initiator, occurred_at in rows:
        contacts[subscriber_id].append(
            ContactEntry(initiator=cast(Initiator, initiator), at=occurred_at)
        )
    return contacts
