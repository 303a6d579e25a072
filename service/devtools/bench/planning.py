"""Seeding and planning: N confirmed subscribers, then the planner in parallel processes.

Every planning phase reports its wall-clock rate and its CPU per subscriber: the
planner processes' own and their PostgreSQL backends' (read from /proc when the
server runs on this machine). On a shared machine the rate moves with other load;
the CPU per subscriber does not, and gives the rate the cores would allow idle.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, insert, select, text, update

from service.devtools.bench.scratch import cpu_seconds
from service.devtools.bench.world import SEED_CHUNK, BenchWorld
from service.pacing.policy import pacing_policy
from service.pacing.rules import PacingPolicy
from service.pacing.window import midday_zone
from service.sending.decisions import Experiment, plan_decision_points
from service.sending.planner import plan_due
from service.sending.risky_patterns import population_prior
from service.storage.db import session_factory
from service.storage.models import Channel, Message, Subscriber
from service.storage.models_records import Decision as DecisionRow


def subscriber_row(i: int, zone: str, at: datetime, **extra: Any) -> dict[str, Any]:
    """A synthetic subscriber `i` (default pacing, daytime hours), created at `at`."""
    return {
        "id": i,
        "created_at": at,
        "timezone": zone,
        "cadence_per_week": 7,
        "hour_start": 8,
        "hour_end": 20,
        "activity_areas": "",
        "discreet": False,
        **extra,
    }


def sms_channel_row(i: int, at: datetime) -> dict[str, Any]:
    """Subscriber `i`'s confirmed SMS channel, consented and confirmed at `at`."""
    return {
        "id": i,
        "subscriber_id": i,
        "kind": "sms",
        "address": f"+1{2_000_000_000 + i}",
        "status": "active",
        "created_at": at,
        "updated_at": at,
        "consent_at": at,
        "consent_method": "import",
        "confirmed_at": at,
    }


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
                    subscriber_row(
                        i, zone, now, welcomed=False, next_plan_at=now - timedelta(seconds=1)
                    )
                    for i in ids
                ],
            )
            session.execute(
                insert(Channel),
                [sms_channel_row(i, now) for i in ids],
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
    every process has imported and connected. The v1 planner writes its decision-log
    rows with the messages, so the rate includes them.
    """
    world.progress(f"planning ({processes} planner processes)")
    now = datetime.now(UTC)
    run = run_planners(world, processes, now, experiment=False)
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
    elapsed = run.pop("seconds_exact")
    return {
        "planned": planned,
        **run,
        "made_due": made_due,
        "per_s": round(planned / elapsed) if elapsed else None,
    }


def run_planners(
    world: BenchWorld, processes: int, now: datetime, *, experiment: bool
) -> dict[str, Any]:
    """Run the planner (v1, or the grid pass) in `processes` spawned processes until
    nothing is due; their wall time and CPU: the planners' own (`process_time`) and,
    when the database runs on this machine, that of their PostgreSQL backends.

    The clock starts once every process is connected and, for the grid, has fitted
    everyone's risky-hour pattern (kept 6 h per process; its CPU is reported apart)."""
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(processes + 1)
    results: multiprocessing.Queue[dict[str, float]] = context.Queue()
    database_url = str(world.sessions.kw["bind"].url.render_as_string(hide_password=False))
    job = PlannerJob(
        database_url=database_url,
        policy=pacing_policy(world.settings),
        batch_size=world.settings.planner_batch_size,
        now=now,
        experiment=experiment,
        secret=world.settings.secret_key.get_secret_value(),
        survey=world.settings.daily_survey == "on",
    )
    workers = [
        context.Process(target=_planner_process, args=(job, ready, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    load_before = _loadavg()
    logged_before = _decisions(world)
    ready.wait(timeout=60)
    started = time.monotonic()
    reports = [results.get(timeout=3600) for _ in workers]
    elapsed = time.monotonic() - started
    for worker in workers:
        worker.join(timeout=30)
    looked_at = _decisions(world) - logged_before  # one decision-log row per subscriber
    planner_cpu = sum(r["cpu_s"] for r in reports)
    backends = [r["postgres_cpu_s"] for r in reports]
    postgres_cpu = None if any(b < 0 for b in backends) else sum(backends)
    per = 1000 / looked_at if looked_at else 0.0
    cpu = {
        "planner_ms_per_subscriber": round(planner_cpu * per, 4),
        "postgres_ms_per_subscriber": None
        if postgres_cpu is None
        else round(postgres_cpu * per, 4),
    }
    total = planner_cpu + (postgres_cpu or 0.0)
    return {
        "reported": sum(int(r["planned"]) for r in reports),
        "looked_at": looked_at,
        "processes": processes,
        "seconds": round(elapsed, 2),
        "seconds_exact": elapsed,
        "cpu": cpu,
        # The grid's one-off per process (not in the rate): fitting everyone's pattern.
        "prior_fit_cpu_s": [round(r["prior_cpu_s"], 3) for r in reports] if experiment else None,
        # What the CPU per subscriber allows on this machine's cores when nothing
        # else runs: the wall-clock rate moves with other load, this does not.
        "per_s_idle_cores": round(looked_at * (os.cpu_count() or 1) / total) if total else None,
        "loadavg": [load_before, _loadavg()],
    }


@dataclass(frozen=True)
class PlannerJob:
    """What a spawned planner process needs (picklable)."""

    database_url: str
    policy: PacingPolicy
    batch_size: int
    now: datetime
    experiment: bool  # False: v1 (`plan_due`); True: the grid pass (STEADY_EXPERIMENT=on)
    secret: str
    survey: bool


def _planner_process(
    job: PlannerJob, ready: Any, results: multiprocessing.Queue[dict[str, float]]
) -> None:
    """One planner process of a planning phase (spawned: a clean interpreter)."""
    sessions = session_factory(job.database_url)
    backends: list[int] = []
    engine = sessions.kw["bind"]
    if engine.dialect.name == "postgresql":

        @event.listens_for(engine, "connect")
        def _backend(connection: Any, _record: Any) -> None:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                backends.append(int(cursor.fetchone()[0]))

    prior = 0.0
    with sessions() as session:
        session.execute(select(1))  # connected before the clock starts
        if job.experiment:
            # Everyone's risky-hour pattern is fitted once per process and kept for
            # PRIOR_TTL (6 h): a process's set-up, like its connection, timed apart.
            prior = time.process_time()
            population_prior(session, job.now)
            prior = time.process_time() - prior
    ready.wait(timeout=60)
    started = {pid: cpu_seconds(pid) for pid in backends}
    cpu = time.process_time()
    if job.experiment:
        experiment = Experiment.from_secret(job.secret, survey=job.survey)
        report = plan_decision_points(
            sessions, job.policy, job.now, experiment, batch_size=job.batch_size
        )
    else:
        report = plan_due(sessions, job.policy, job.now, batch_size=job.batch_size)
    cpu = time.process_time() - cpu
    local = all(_is_postgres_backend(pid) for pid in backends) and bool(backends)
    postgres = sum(cpu_seconds(pid) - started.get(pid, 0.0) for pid in backends)
    results.put(
        {
            "planned": report.count,
            "cpu_s": cpu,
            "postgres_cpu_s": postgres if local else -1.0,
            "prior_cpu_s": prior,
        }
    )


def _decisions(world: BenchWorld) -> int:
    with world.sessions() as session:
        return session.scalar(select(func.count()).select_from(DecisionRow)) or 0


def _is_postgres_backend(pid: int) -> bool:
    """Whether `pid` is a PostgreSQL process here (not a stranger's, on another host)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().startswith("postgres")
    except OSError:
        return False


def _loadavg() -> float | None:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return None
