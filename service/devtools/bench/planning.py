"""Seeding and planning: N confirmed subscribers, then the planner in parallel processes."""

from __future__ import annotations

import multiprocessing
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, text, update

from service.devtools.bench.world import SEED_CHUNK, BenchWorld
from service.pacing.policy import pacing_policy
from service.pacing.rules import PacingPolicy
from service.pacing.window import midday_zone
from service.sending.planner import plan_due
from service.storage.db import session_factory
from service.storage.models import Channel, Message, Subscriber


def seed(world: BenchWorld, count: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    zone = midday_zone(now)
    world.progress(f"seeding {count:,} subscribers ({zone})")
    started = time.monotonic()
    with world.sessions() as session:
        for first in range(1, count + 1, SEED_CHUNK):
            ids = range(first, min(first + SEED_CHUNK, count + 1))
            session.execute(
                insert(Subscriber),
                [
                    {
                        "id": i,
                        "created_at": now,
                        "timezone": zone,
                        "cadence_per_week": 7,
                        "hour_start": 8,
                        "hour_end": 20,
                        "activity_areas": "",
                        "discreet": False,
                        "welcomed": False,
                        "next_plan_at": now - timedelta(seconds=1),
                    }
                    for i in ids
                ],
            )
            session.execute(
                insert(Channel),
                [
                    {
                        "id": i,
                        "subscriber_id": i,
                        "kind": "sms",
                        "address": f"+1{2_000_000_000 + i}",
                        "status": "active",
                        "created_at": now,
                        "updated_at": now,
                        "consent_at": now,
                        "consent_method": "import",
                        "confirmed_at": now,
                    }
                    for i in ids
                ],
            )
            session.commit()
        if session.get_bind().dialect.name == "postgresql":
            for table in ("subscribers", "channels"):
                session.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), :n)"),
                    {"n": count},
                )
            session.execute(text("ANALYZE"))
            session.commit()
    return {"zone": zone, "seconds": round(time.monotonic() - started, 2)}


def plan(world: BenchWorld, processes: int) -> dict[str, Any]:
    """The planner in `processes` processes at once, as overlapping beat ticks run it.

    Each takes its own batches (`FOR UPDATE SKIP LOCKED`); the clock starts once
    every process has imported and connected.
    """
    world.progress(f"planning ({processes} planner processes)")
    now = datetime.now(UTC)
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(processes + 1)
    results: multiprocessing.Queue[int] = context.Queue()
    database_url = str(world.sessions.kw["bind"].url.render_as_string(hide_password=False))
    workers = [
        context.Process(
            target=_planner_process,
            args=(
                database_url,
                pacing_policy(world.settings),
                world.settings.planner_batch_size,
                now,
                ready,
                results,
            ),
        )
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    ready.wait(timeout=60)
    started = time.monotonic()
    reported = sum(results.get(timeout=3600) for _ in workers)
    elapsed = time.monotonic() - started
    for worker in workers:
        worker.join(timeout=30)
    with world.sessions() as session:
        planned = session.scalar(select(func.count()).select_from(Message)) or 0
        # The first nudge of a new subscriber (the welcome) is due at once; anything
        # the pacing put later is brought forward so the whole backlog is due now.
        made_due_result = session.execute(
            update(Message)
            .where(Message.scheduled_for > now)
            .values(scheduled_for=now, expires_at=now + timedelta(hours=2))
        )
        made_due = int(getattr(made_due_result, "rowcount", 0) or 0)
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("ANALYZE messages"))
        session.commit()
        world.backlog = list(session.scalars(select(Message.id).order_by(Message.id)))
    return {
        "planned": planned,
        "reported": reported,
        "processes": processes,
        "made_due": made_due,
        "seconds": round(elapsed, 2),
        "per_s": round(planned / elapsed) if elapsed else None,
    }


def _planner_process(
    database_url: str,
    policy: PacingPolicy,
    batch_size: int,
    now: datetime,
    ready: Any,
    results: multiprocessing.Queue[int],
) -> None:
    """One planner process of the planning phase (spawned: a clean interpreter)."""
    sessions = session_factory(database_url)
    with sessions() as session:
        session.execute(select(1))  # connected before the clock starts
    ready.wait(timeout=60)
    report = plan_due(sessions, policy, now, batch_size=batch_size)
    results.put(report.count)
