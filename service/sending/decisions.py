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
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from service.learning.risky_hours import BINS, Prior, bin_of
from service.messages.catalog import SURVEY_TEMPLATE, Kind
from service.pacing.decision_times import is_last_point_of_day, next_decision_point, survey_time
from service.pacing.experiment import Situation, decide
from service.pacing.rules import PacingPolicy, PlannedNudge, SubscriberState
from service.sending import planning_reads as reads
from service.sending.bulk import decision_row, insert_decisions, insert_messages, message_row
from service.sending.planner import PlanReport
from service.sending.planning_reads import ActiveChannel
from service.sending.risky_patterns import population_prior
from service.storage.bulkwrite import one_of
from service.storage.models import Subscriber

SURVEY_RULE = "daily_survey"
RISKY_LOOKBACK = timedelta(days=56)  # a person's own ME log, for their risky hours


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
        message = f"{subscriber_id}|{_stamp(point)}".encode()
        digest = hmac.digest(self.key, message, "sha256")  # HMAC-SHA256, in one C call
        return int.from_bytes(digest[:8], "big") / 2**64


@lru_cache(maxsize=256)
def _stamp(point: datetime) -> str:
    """A point's whole seconds, as the draw's message writes them (a batch shares a few
    points: formatted once each, not once a person)."""
    return f"{point.timestamp():.0f}"


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
            while ids := reads.claim_due_ids(
                session, Subscriber.next_decision_at, now, batch_size, seen
            ):
                seen.update(ids)
                _decide_batch(session, ids, policy, now, experiment, report)
            session.rollback()
            return report
        session.commit()
    batches = 0
    while max_batches is None or batches < max_batches:
        with sessions() as session:
            ids = reads.claim_due_ids(session, Subscriber.next_decision_at, now, batch_size, None)
            if not ids:
                break
            _decide_batch(session, ids, policy, now, experiment, report)
            session.commit()
        batches += 1
        if len(ids) < batch_size:
            break
    return report


def enter_grid(session: Session, policy: PacingPolicy, now: datetime, batch_size: int) -> int:
    """Give everyone due a re-plan (``next_plan_at``) a place on the grid.

    Someone already on it keeps their point; the others' points are the same for
    everyone with the same zone and hours, so each distinct point is one UPDATE.
    """
    entered = 0
    query = (
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
    )
    if session.get_bind().dialect.name == "postgresql":
        # Two planners (a second beat, a manual tick) enter disjoint people, rather than
        # the second waiting on the first's rows and then writing them again.
        query = query.with_for_update(skip_locked=True)
    while True:
        rows = session.execute(query).all()
        if not rows:
            return entered
        keep: list[int] = []
        places: dict[datetime, list[int]] = defaultdict(list)
        points: dict[tuple[str, int, int], datetime] = {}
        for row in rows:
            if row.next_decision_at is not None:
                keep.append(row.id)
            elif not row.welcomed:
                places[now].append(row.id)
            else:
                key = (row.timezone, row.hour_start, row.hour_end)
                point = points.get(key)
                if point is None:
                    hours = (row.hour_start, row.hour_end)
                    point = points[key] = next_decision_point(now, row.timezone, hours, policy)
                places[point].append(row.id)
        if keep:
            _update(session, keep, next_plan_at=None)
        for point, ids in places.items():
            _update(session, ids, next_plan_at=None, next_decision_at=point)
        entered += len(rows)


def _update(session: Session, ids: Sequence[int], **values: Any) -> None:
    """Set the same ``values`` on the people ``ids``, in one statement."""
    session.execute(
        update(Subscriber)
        .where(one_of(session, Subscriber.id, ids))
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def _decide_batch(
    session: Session,
    ids: Sequence[int],
    policy: PacingPolicy,
    now: datetime,
    experiment: Experiment,
    report: PlanReport,
) -> None:
    people = reads.subscribers(session, ids)
    channels = reads.active_channels(session, ids)
    outstanding = reads.outstanding(session, ids, now)
    history, replies = reads.recent_nudges(session, ids, now - policy.lookback)
    contacts, mine = reads.contacts_and_me_times(
        session, ids, now - policy.lookback, (now - RISKY_LOOKBACK, now)
    )
    patterns = Patterns(population_prior(session, now))

    messages: list[dict[str, Any]] = []
    logged: list[tuple[dict[str, Any], int | None]] = []  # (row, index into messages)
    # Where each person goes next: most of a batch shares a few points (same zone, hours).
    moves: dict[datetime | None, list[int]] = defaultdict(list)
    followings: dict[tuple[datetime, str, int, int], datetime] = {}
    welcomed: list[int] = []
    for sub in people:
        point = sub.next_decision_at
        after = max(point, now)
        key = (after, sub.timezone, sub.hour_start, sub.hour_end)
        following = followings.get(key)
        if following is None:
            hours = (sub.hour_start, sub.hour_end)
            following = followings[key] = next_decision_point(after, sub.timezone, hours, policy)
        channel = channels.get(sub.id)
        state = reads.pacing_state(sub, channel, history, replies, contacts)
        # Positional, in the order of Situation's fields (at, now, following, flagged,
        # channel_active, outstanding, randomise, draw, pattern, survey): a frozen
        # dataclass takes keywords at twice the cost, once per person.
        situation = Situation(
            point,
            now,
            following,
            sub.flagged_at is not None,
            channel is not None,
            sub.id in outstanding,
            experiment.on and not sub.experiment_opt_out,
            experiment.draw(sub.id, point),
            patterns.of(mine.get(sub.id, ()), sub.timezone),
            experiment.survey,
        )
        decision = decide(state, situation, policy)
        index = None
        if decision.nudge is not None and channel is not None:
            index = len(messages)
            messages.append(message_row(sub.id, channel, decision.nudge, now))
            report.planned.append((sub.id, decision.nudge, channel[1]))
            if decision.nudge.kind == Kind.WELCOME:
                welcomed.append(sub.id)
        logged.append((decision_row(sub.id, decision), index))
        question = _survey(sub, channel, state, point, now, experiment, policy)
        if question is not None and channel is not None:
            messages.append(message_row(sub.id, channel, question, now))
            report.planned.append((sub.id, question, channel[1]))
        # No active channel: off the grid until a confirmation or START brings them back.
        moves[following if channel is not None else None].append(sub.id)
    ids_made = insert_messages(session, messages)
    rows = []
    for row, index in logged:
        row["message_id"] = ids_made[index] if index is not None else None
        rows.append(row)
    insert_decisions(session, rows)
    for following, moved in moves.items():
        _update(session, moved, next_decision_at=following)
    if welcomed:
        _update(session, welcomed, welcomed=True)


class Patterns:
    """Each person's predicted risky hours in one batch (`Prior.posterior` of their own ME
    counts): people whose ME logs fall in the same bins share one pattern, computed once."""

    def __init__(self, prior: Prior) -> None:
        self.prior = prior
        self.known: dict[tuple[int, ...], tuple[float, ...]] = {}

    def of(self, times: Sequence[datetime], timezone: str) -> tuple[float, ...]:
        zone = ZoneInfo(timezone)
        bins = tuple(sorted([bin_of(at.astimezone(zone)) for at in times]))
        pattern = self.known.get(bins)
        if pattern is None:
            own = [0.0] * BINS
            for b in bins:
                own[b] += 1.0
            pattern = self.known[bins] = self.prior.posterior(own)
        return pattern


def _survey(
    sub: Any,
    channel: ActiveChannel | None,
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
