"""The planning pass while STEADY_EXPERIMENT is on: one decision per decision point.

A decision point is one of the ``DECISIONS_PER_DAY`` fixed places in a person's local
sending window (``service.pacing.experiment``). Each pass:

1. brings onto the grid everyone the v1 events asked to plan (``next_plan_at`` due):
   someone not yet welcomed is decided at once (the welcome goes as in v1), anyone else
   at their next point; ``next_plan_at`` is cleared, ``next_decision_at`` set;
2. takes, in batches, everyone whose ``next_decision_at`` is due, asks pacing for the
   decision (with a seeded draw: a keyed hash of the subscriber and the point, so the
   same point always decides the same), and writes the batch's nudges, daily questions
   and decision rows in bulk, then moves each person to their next point. Everyone on
   the grid gets a row at every point, also while unavailable (crisis, pause, cap...);
   a person with no active channel gets one row ("stopped") and leaves the grid until
   a confirmation or START brings them back through step 1.

The daily question (``STEADY_DAILY_SURVEY``): decided with the day's last point, for
everyone with an active SMS channel who is not paused or flagged, whatever that point
decided; it goes halfway between that point and the window's closing. It keeps the
window and the SMS cap (the cap keeps one SMS for it), not the spacing or cadence: it is
a question asked of everyone alike, not a nudge, and a nudge must not crowd it out.

The risky-hour reminder needs everyone's pattern as the prior
(``service.sending.risky_patterns.population_prior``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Select, Table, and_, bindparam, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from service.channels import ChannelKind
from service.learning.risky_hours import counts
from service.messages.catalog import ACTIVITY_AREAS, NUDGE_KINDS, SURVEY_TEMPLATE, Kind
from service.messages.lifecycle import OUTSTANDING, PRIORITY_NUDGE
from service.pacing.decision_times import is_last_point_of_day, next_decision_point, survey_time
from service.pacing.experiment import Situation, decide
from service.pacing.rules import PacingPolicy, PlannedNudge, SubscriberState
from service.pacing.window import split_zones
from service.sending.bulk import decision_row, insert_decisions, insert_messages
from service.sending.planner import (
    PlanReport,
    _active_channels,
    _recent_contacts,
    _recent_nudges,
)
from service.sending.risky_patterns import me_times, population_prior
from service.storage.models import Message, MessageStatus, Subscriber, UTCDateTime

SURVEY_RULE = "daily_survey"
RISKY_LOOKBACK = timedelta(days=56)  # a person's own ME log, for their risky hours
NUDGE_KIND_VALUES = tuple(str(kind) for kind in NUDGE_KINDS)
SUBSCRIBERS = cast(Table, Subscriber.__table__)


@dataclass(frozen=True)
class Experiment:
    """The experiment's settings, as the planner needs them."""

    on: bool
    survey: bool
    key: bytes  # derived from STEADY_SECRET_KEY: the draws cannot be guessed from outside

    @classmethod
    def from_secret(cls, secret: str, *, on: bool = True, survey: bool = False) -> Experiment:
        key = hashlib.sha256(b"steady.experiment:" + secret.encode()).digest()
        return cls(on=on, survey=survey, key=key)

    def draw(self, subscriber_id: int, point: datetime) -> float:
        """Uniform on [0, 1), fixed by the subscriber, the point and the key."""
        message = f"{subscriber_id}|{point.timestamp():.0f}".encode()
        digest = hmac.new(self.key, message, hashlib.sha256).digest()
        return int.from_bytes(digest[:8], "big") / 2**64


def plan_decision_points(
    sessions: sessionmaker[Session],
    policy: PacingPolicy,
    now: datetime,
    experiment: Experiment,
    *,
    batch_size: int = 1000,
    max_batches: int | None = None,
    dry_run: bool = False,
) -> PlanReport:
    """One pass of the grid as of ``now`` (module docstring)."""
    report = PlanReport()
    with sessions() as session:
        enter_grid(session, policy, now, batch_size)
        if dry_run:
            seen: set[int] = set()
            while ids := _claim_due(session, now, batch_size, exclude=seen):
                seen.update(ids)
                _decide_batch(session, ids, policy, now, experiment, report)
            session.rollback()
            return report
        session.commit()
    batches = 0
    while max_batches is None or batches < max_batches:
        with sessions() as session:
            ids = _claim_due(session, now, batch_size, exclude=None)
            if not ids:
                break
            _decide_batch(session, ids, policy, now, experiment, report)
            session.commit()
        batches += 1
        if len(ids) < batch_size:
            break
    return report


def enter_grid(session: Session, policy: PacingPolicy, now: datetime, batch_size: int) -> int:
    """Give everyone due a re-plan (``next_plan_at``) a place on the grid."""
    entered = 0
    while True:
        rows = session.execute(
            select(
                Subscriber.id,
                Subscriber.timezone,
                Subscriber.hour_start,
                Subscriber.hour_end,
                Subscriber.welcomed,
                Subscriber.next_decision_at,
            )
            .where(Subscriber.next_plan_at <= now, Subscriber.flagged_at.is_(None))
            .limit(batch_size)
        ).all()
        if not rows:
            return entered
        places = []
        for row in rows:
            point = row.next_decision_at
            if point is None:
                hours = (row.hour_start, row.hour_end)
                point = (
                    now
                    if not row.welcomed
                    else next_decision_point(now, row.timezone, hours, policy)
                )
            places.append({"b_id": row.id, "b_point": point})
        session.execute(
            update(SUBSCRIBERS)
            .where(SUBSCRIBERS.c.id == bindparam("b_id"))
            .values(
                next_plan_at=None,
                next_decision_at=bindparam("b_point", type_=UTCDateTime()),
            ),
            places,
        )
        entered += len(rows)


def _claim_due(session: Session, now: datetime, limit: int, exclude: set[int] | None) -> list[int]:
    query: Select[int] = (
        select(Subscriber.id)
        .where(Subscriber.next_decision_at <= now)
        .order_by(Subscriber.next_decision_at)
        .limit(limit)
    )
    if exclude:
        query = query.where(Subscriber.id.not_in(exclude))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))


def _decide_batch(
    session: Session,
    ids: Sequence[int],
    policy: PacingPolicy,
    now: datetime,
    experiment: Experiment,
    report: PlanReport,
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
            Subscriber.flagged_at,
            Subscriber.experiment_opt_out,
            Subscriber.next_decision_at,
        ).where(Subscriber.id.in_(ids))
    ).all()
    channels = _active_channels(session, ids)
    outstanding = _outstanding(session, ids, now)
    history, replies = _recent_nudges(session, ids, now - policy.lookback)
    contacts = _recent_contacts(session, ids, now - policy.lookback)
    mine = me_times(session, ids, now - RISKY_LOOKBACK, now)
    prior = population_prior(session, now)

    messages: list[dict[str, Any]] = []
    logged: list[tuple[dict[str, Any], int | None]] = []  # (row, index into messages)
    moves: list[dict[str, Any]] = []
    welcomed: list[int] = []
    for sub in subscribers:
        point = sub.next_decision_at
        hours = (sub.hour_start, sub.hour_end)
        following = next_decision_point(max(point, now), sub.timezone, hours, policy)
        channel = channels.get(sub.id)
        state = _state(sub, channel, history, replies, contacts)
        zone = ZoneInfo(sub.timezone)
        own = counts(at.astimezone(zone) for at in mine.get(sub.id, ()))
        situation = Situation(
            at=point,
            now=now,
            following=following,
            flagged=sub.flagged_at is not None,
            channel_active=channel is not None,
            outstanding=sub.id in outstanding,
            randomise=experiment.on and not sub.experiment_opt_out,
            draw=experiment.draw(sub.id, point),
            pattern=prior.posterior(own),
            survey=experiment.survey,
        )
        decision = decide(state, situation, policy)
        index = None
        if decision.nudge is not None and channel is not None:
            index = len(messages)
            messages.append(_message_row(sub.id, channel, decision.nudge, now))
            report.planned.append((sub.id, decision.nudge, channel[1]))
            if decision.nudge.kind == Kind.WELCOME:
                welcomed.append(sub.id)
        logged.append((decision_row(sub.id, decision), index))
        question = _survey(sub, channel, state, point, now, experiment, policy)
        if question is not None and channel is not None:
            messages.append(_message_row(sub.id, channel, question, now))
            report.planned.append((sub.id, question, channel[1]))
        # No active channel: off the grid until a confirmation or START brings them back.
        moves.append({"b_id": sub.id, "b_point": following if channel is not None else None})
    ids_made = insert_messages(session, messages)
    rows = []
    for row, index in logged:
        row["message_id"] = ids_made[index] if index is not None else None
        rows.append(row)
    insert_decisions(session, rows)
    session.execute(
        update(SUBSCRIBERS)
        .where(SUBSCRIBERS.c.id == bindparam("b_id"))
        .values(next_decision_at=bindparam("b_point", type_=UTCDateTime())),
        moves,
    )
    if welcomed:
        session.execute(
            update(Subscriber)
            .where(Subscriber.id.in_(welcomed))
            .values(welcomed=True)
            .execution_options(synchronize_session=False)
        )


Channel = tuple[int, ChannelKind, datetime | None]


def _state(
    sub: Any,
    channel: Channel | None,
    history: dict[int, list[Any]],
    replies: dict[int, list[Any]],
    contacts: dict[int, list[Any]],
) -> SubscriberState:
    areas = tuple(a for a in sub.activity_areas.split(",") if a in ACTIVITY_AREAS)
    return SubscriberState(
        subscriber_id=sub.id,
        timezone=sub.timezone,
        channel=channel[1] if channel is not None else ChannelKind.SMS,
        cadence_per_week=sub.cadence_per_week,
        hours=(sub.hour_start, sub.hour_end),
        activity_areas=areas or ACTIVITY_AREAS,
        separation_date=sub.separation_date,
        paused_until=sub.paused_until,
        active_since=channel[2] if channel is not None else None,
        welcomed=sub.welcomed,
        last_engaged_at=sub.last_engaged_at,
        last_done_at=sub.last_done_at,
        recent_nudges=tuple(history.get(sub.id, ())),
        recent_replies=tuple(replies.get(sub.id, ())),
        contacts=tuple(contacts.get(sub.id, ())),
        candidate_zones=split_zones(sub.timezone_candidates),
    )


def _survey(
    sub: Any,
    channel: Channel | None,
    state: SubscriberState,
    point: datetime,
    now: datetime,
    experiment: Experiment,
    policy: PacingPolicy,
) -> PlannedNudge | None:
    """The day's question, planned with the day's last point (module docstring)."""
    if not experiment.survey or channel is None or channel[1] != "sms":
        return None
    if sub.flagged_at is not None or (state.paused_until is not None and state.paused_until > now):
        return None
    hours = (sub.hour_start, sub.hour_end)
    if not is_last_point_of_day(point, sub.timezone, hours, policy):
        return None
    send, closes = survey_time(point, sub.timezone, hours, policy)
    if send < now:
        return None  # the planner came too late for today's question
    return PlannedNudge(
        kind=Kind.SURVEY,
        template=SURVEY_TEMPLATE,
        rule=SURVEY_RULE,
        scheduled_for=send,
        expires_at=closes,
    )


def _message_row(
    subscriber_id: int, channel: Channel, plan: PlannedNudge, now: datetime
) -> dict[str, Any]:
    return {
        "subscriber_id": subscriber_id,
        "channel_id": channel[0],
        "channel": channel[1],
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


def _outstanding(session: Session, ids: Sequence[int], now: datetime) -> set[int]:
    """People with a nudge still scheduled or in flight (as the v1 planner counts them)."""
    return set(
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
