"""Planning people who have been here a while, with STEADY_EXPERIMENT off and on.

The main planning phase plans new subscribers: everyone's first nudge is the welcome,
with no history to read. Most planning passes are about people with a past: a
fortnight of nudges, ME and THEM logs, a risky-hour pattern. This phase seeds N such
people in a scratch database of its own (the main one's backlog stays what dispatch
sends) and plans them twice:

* **off**: the v1 planner (`plan_due`), everyone due a re-plan, one decision-log row each;
* **on**: the grid pass (`plan_decision_points`), everyone at a due decision point, one
  in three also asking for a re-plan (a nudge of theirs just settled), so `enter_grid`
  runs too; one decision-log row each, most of them randomised.

The population (per subscriber i): welcomed, engaged three days ago (not quiet), five
nudges over the last fortnight (three in the last week, so cadence 7 leaves room), six
ME and two THEM logs over eight weeks at hours that vary with i (their own risky hours);
one in ten reached out (ME) two days ago (the restraint hold), one in twenty opted out of
the randomisation. Everyone lives where it is now early afternoon, and both passes plan
as of a minute after their 14:00 decision point (the planner takes its time as an
argument), so the span to the next point (18:00) is the one the risky-hour reminder
times itself in.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Table, delete, insert, text, update

from service.devtools.bench.planning import run_planners, sms_channel_row, subscriber_row
from service.devtools.bench.world import SEED_CHUNK, BenchWorld
from service.messages.catalog import (
    ACTIVITY_AREAS,
    ACTIVITY_TEMPLATES,
    PATIENCE_TEMPLATES,
    RESTRAINT_TEMPLATES,
    Kind,
)
from service.messages.lifecycle import PRIORITY_NUDGE
from service.pacing.decision_times import decision_points
from service.pacing.policy import pacing_policy
from service.pacing.rules import PacingPolicy
from service.pacing.window import local_wall_time, midday_zone
from service.storage.models import Channel, ContactLog, Message, MessageStatus, Subscriber
from service.storage.models_records import Decision

NUDGES = 5  # over the last fortnight, three days apart
ME_LOGS = 6
THEM_LOGS = 2


def returning(world: BenchWorld, count: int, processes: int) -> dict[str, Any]:
    """Seed the returning population, then plan it with the experiment off and on."""
    zone = midday_zone(datetime.now(UTC))
    hours = (8, 20)
    point = _point_near_now(zone, hours, pacing_policy(world.settings))
    now = point + timedelta(minutes=1)  # both passes plan as of a minute after the point
    seeded = _seed(world, count, now, zone)
    world.progress(f"planning {count:,} returning subscribers, experiment off")
    with world.sessions.begin() as session:
        session.execute(update(Subscriber).values(next_plan_at=now - timedelta(seconds=1)))
    _vacuum(world)
    off = run_planners(world, processes, now, experiment=False)
    world.progress(f"planning {count:,} returning subscribers, experiment on")
    with world.sessions.begin() as session:
        # Back to where the off pass found them, on the grid at a due point.
        session.execute(delete(Message).where(Message.status == MessageStatus.SCHEDULED))
        session.execute(delete(Decision))
        session.execute(update(Subscriber).values(next_plan_at=None, next_decision_at=point))
        session.execute(
            update(Subscriber)
            .where(Subscriber.id % 3 == 0)
            .values(next_plan_at=point - timedelta(minutes=5))
        )
    _vacuum(world)
    on = run_planners(world, processes, now, experiment=True)
    return {"seed": seeded, "off": _rate(off), "on": _rate(on)}


def _point_near_now(zone: str, hours: tuple[int, int], policy: PacingPolicy) -> datetime:
    """Today's decision point nearest to now in `zone` (the middle one: about 14:00)."""
    wall = datetime.now(UTC)
    today = local_wall_time(wall, ZoneInfo(zone)).date()
    points = decision_points(today, zone, hours, policy)
    return min(points, key=lambda point: abs(point - wall))


def _rate(run: dict[str, Any]) -> dict[str, Any]:
    elapsed = run.pop("seconds_exact")
    return {**run, "per_s": round(run["looked_at"] / elapsed) if elapsed else None}


def _vacuum(world: BenchWorld) -> None:
    """What autovacuum would have done between two passes hours apart: the dead rows
    of the seeding and of the reset gone, the statistics fresh."""
    engine = world.sessions.kw["bind"]
    if engine.dialect.name != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))


def _seed(world: BenchWorld, count: int, now: datetime, zone: str) -> dict[str, Any]:
    world.progress(f"seeding {count:,} returning subscribers ({zone})")
    started = time.monotonic()
    since = now - timedelta(days=60)
    with world.sessions() as session:
        for first in range(1, count + 1, SEED_CHUNK):
            ids = range(first, min(first + SEED_CHUNK, count + 1))
            session.execute(
                insert(Subscriber),
                [
                    subscriber_row(
                        i,
                        zone,
                        since,
                        welcomed=True,
                        last_engaged_at=now - timedelta(days=3),
                        experiment_opt_out=i % 20 == 0,
                    )
                    for i in ids
                ],
            )
            session.execute(
                insert(Channel),
                [sms_channel_row(i, since) for i in ids],
            )
            session.execute(insert(_table(Message)), [m for i in ids for m in _nudges(i, now)])
            session.execute(insert(_table(ContactLog)), [c for i in ids for c in _contacts(i, now)])
            session.commit()
    return {"zone": zone, "seconds": round(time.monotonic() - started, 2)}


def _table(model: type[Any]) -> Table:
    table: Table = model.__table__
    return table


def _nudges(i: int, now: datetime) -> list[dict[str, Any]]:
    """Five sent nudges, three days apart, the latest a day ago: activity, restraint,
    activity, patience, activity (the normal mix)."""
    area = ACTIVITY_AREAS[i % len(ACTIVITY_AREAS)]
    mix = (
        (Kind.ACTIVITY, ACTIVITY_TEMPLATES[area][0]),
        (Kind.RESTRAINT, RESTRAINT_TEMPLATES[i % len(RESTRAINT_TEMPLATES)]),
        (Kind.ACTIVITY, ACTIVITY_TEMPLATES[area][1]),
        (Kind.PATIENCE, PATIENCE_TEMPLATES[i % len(PATIENCE_TEMPLATES)]),
        (Kind.ACTIVITY, ACTIVITY_TEMPLATES[area][2]),
    )
    rows = []
    for k, (kind, template) in enumerate(mix):
        at = now - timedelta(days=1 + 3 * (NUDGES - 1 - k), hours=i % 5)
        rows.append(
            {
                "subscriber_id": i,
                "channel_id": i,
                "channel": "sms",
                "kind": str(kind),
                "template": template,
                "rule": "activity_rotation",
                "priority": PRIORITY_NUDGE,
                "status": MessageStatus.DELIVERED,
                "scheduled_for": at,
                "sent_at": at,
                "attempts": 1,
                "created_at": at,
                "updated_at": at,
            }
        )
    return rows


def _contacts(i: int, now: datetime) -> list[dict[str, Any]]:
    """ME logs at the person's own hour of the afternoon or evening (one to seven hours
    later in the day than now) or the hour after, nine days apart, the latest four days
    ago (one in ten: two days ago, within the restraint hold); and two THEM logs."""
    latest = timedelta(days=2) if i % 10 == 0 else timedelta(days=4)
    rows = [
        {
            "subscriber_id": i,
            "initiator": "me",
            "medium": "text",
            "occurred_at": now
            - latest
            - timedelta(days=9 * k)
            + timedelta(hours=1 + i % 7 + k % 2),
            "created_at": now,
        }
        for k in range(ME_LOGS)
    ]
    rows += [
        {
            "subscriber_id": i,
            "initiator": "them",
            "medium": "text",
            "occurred_at": now - timedelta(days=5 + 11 * k),
            "created_at": now,
        }
        for k in range(THEM_LOGS)
    ]
    return rows
