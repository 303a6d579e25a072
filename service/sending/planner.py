"""The planner: turns due subscribers into scheduled message rows, in batches.

A subscriber is due when `next_plan_at <= now`. For each batch the planner reads
what pacing needs in a handful of set-based queries (`service.sending.planning_reads`,
shared with the decision grid), asks the pure pacing
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

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from service.messages.catalog import Kind
from service.pacing.experiment import v1_logged
from service.pacing.rules import PacingPolicy, PlannedNudge, plan_next
from service.pacing.window import NoSharedWindow
from service.sending import planning_reads as reads
from service.sending.bulk import decision_row, insert_decisions, insert_messages, message_row
from service.sending.grid import leave_grid
from service.storage.bulkwrite import one_of
from service.storage.models import Subscriber


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
            ids = reads.claim_due_ids(
                session,
                Subscriber.next_plan_at,
                now,
                batch_size,
                seen if dry_run else None,
                Subscriber.flagged_at.is_(None),
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


def _plan_batch(
    session: Session, ids: Sequence[int], policy: PacingPolicy, now: datetime, report: PlanReport
) -> None:
    people = reads.subscribers(session, ids)
    channels = reads.active_channels(session, ids)
    outstanding = reads.outstanding(session, ids, now)
    history, replies = reads.recent_nudges(session, ids, now - policy.lookback)
    contacts = reads.recent_contacts(session, ids, now - policy.lookback)

    rows: list[dict[str, Any]] = []
    logged: list[dict[str, Any]] = []  # the decision log: one row per subscriber looked at
    for sub in people:
        channel = channels.get(sub.id)
        if channel is None or sub.id in outstanding:
            # Nothing to plan until a channel is confirmed or the open nudge settles.
            report.skipped += 1
            reason = "stopped" if channel is None else "outstanding"
            logged.append(decision_row(sub.id, v1_logged(now, None, reason)))
            continue
        state = reads.pacing_state(sub, channel, history, replies, contacts)
        try:
            plan = plan_next(state, now, policy)
        except NoSharedWindow:
            report.skipped += 1  # no hours fit every zone they may be in: wait for ZONE
            logged.append(decision_row(sub.id, v1_logged(now, None, "window")))
            continue
        report.planned.append((sub.id, plan, channel[1]))
        logged.append(decision_row(sub.id, v1_logged(now, plan, None)))
        rows.append(message_row(sub.id, channel, plan, now))
    message_ids = iter(insert_messages(session, rows))
    for row in logged:
        if row["chosen"] != "none":
            row["message_id"] = next(message_ids)
    insert_decisions(session, logged)
    # The welcome goes once: mark those who were just planned one. Each person's row is
    # written once, by one of two statements (a per-row test of the welcomed ids would
    # scan them for every row of the batch).
    welcomed = {row["subscriber_id"] for row in rows if row["kind"] == Kind.WELCOME}
    rest = [i for i in ids if i not in welcomed]
    for group, values in ((rest, {}), (sorted(welcomed), {"welcomed": True})):
        if group:
            session.execute(
                update(Subscriber)
                .where(one_of(session, Subscriber.id, group))
                .values(next_plan_at=None, **values)
                .execution_options(synchronize_session=False)
            )
