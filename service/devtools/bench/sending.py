"""The sending phases: dispatch through a real worker, latency under beat, and the
naive baseline (one Celery task per message)."""

from __future__ import annotations

import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update

from service.devtools.bench.scratch import RssSampler, tree_cpu_seconds
from service.devtools.bench.world import SEED_CHUNK, BenchWorld, chunks, percentile, pool_ready
from service.devtools.servers import wait_until
from service.storage.models import Message, MessageStatus, Subscriber


def dispatch(world: BenchWorld, concurrency: int) -> dict[str, Any]:
    from service.sending.wake import DISPATCH_TASK
    from workers.app import make_celery

    with world.sessions() as session:
        due = (
            session.scalar(
                select(func.count())
                .select_from(Message)
                .where(Message.status == MessageStatus.SCHEDULED)
            )
            or 0
        )
    world.progress(f"dispatch: {due:,} due messages, steady worker --concurrency {concurrency}")
    worker = world.processes.steady(
        "worker", "worker", "--concurrency", str(concurrency), "--loglevel", "WARNING"
    )
    sampler = RssSampler([worker])
    wait_until(lambda: pool_ready(worker, concurrency), 60, "the Celery pool")
    world.worker_pid = worker
    sampler.sample()
    producer = make_celery(world.settings)
    world.reset_standin()
    cpu_before = tree_cpu_seconds(worker)
    started = time.monotonic()
    for _ in range(concurrency):
        producer.send_task(DISPATCH_TASK)
    done = world.wait_accepted(due, sampler, "dispatch")
    elapsed = done - started
    world.wait_db_settled()
    worker_cpu = tree_cpu_seconds(worker) - cpu_before
    sampler.sample()
    check = world.settled_check(due)
    with world.sessions() as session:
        sent = session.scalar(
            select(func.count()).select_from(Message).where(Message.status == MessageStatus.SENT)
        )
    producer.close()
    return {
        "messages": due,
        "sent": sent,
        "seconds": round(elapsed, 2),
        "per_s": round(due / elapsed) if elapsed else None,
        "worker_cpu_ms_per_message": round(1000 * worker_cpu / due, 3) if due else None,
        "rss": sampler.summary(),
        "check": check,
    }


def latency(world: BenchWorld, seconds: float, dispatch_rate: float) -> dict[str, Any]:
    """Messages fall due at half the measured rate; beat's tick wakes the pool."""
    rate = max(1.0, dispatch_rate / 2)
    count = int(rate * seconds)
    world.progress(f"latency: {count:,} messages due at {rate:,.0f}/s over {seconds:.0f} s")
    with world.sessions() as session:
        # Nothing new to plan while we measure; then reuse sent rows as fresh due ones.
        session.execute(update(Subscriber).values(next_plan_at=None))
        ids = world.backlog[:count]
        start = datetime.now(UTC) + timedelta(seconds=2)
        session.execute(
            update(Message),
            [
                {
                    "id": message_id,
                    "status": MessageStatus.SCHEDULED,
                    "scheduled_for": start + timedelta(seconds=n / rate),
                    "expires_at": start + timedelta(hours=2),
                    "sent_at": None,
                    "provider_id": None,
                    "attempts": 0,
                }
                for n, message_id in enumerate(ids)
            ],
        )
        session.commit()
    world.reset_standin()
    beat = world.processes.steady(
        "beat", "beat", "--schedule", str(world.processes.workdir / "beat-schedule")
    )
    try:
        world.wait_accepted(len(ids), None, "latency")
        world.wait_db_settled()
    finally:
        world.processes.stop(beat)
    with world.sessions() as session:
        rows = session.execute(
            select(Message.sent_at, Message.scheduled_for).where(Message.id.in_(ids))
        ).all()
    delays = sorted((sent - due).total_seconds() for sent, due in rows if sent is not None)
    return {
        "messages": len(ids),
        "rate_per_s": round(rate),
        "tick_seconds": world.settings.tick_seconds,
        "p50_s": round(percentile(delays, 0.50), 3),
        "p95_s": round(percentile(delays, 0.95), 3),
        "p99_s": round(percentile(delays, 0.99), 3),
        "max_s": round(delays[-1], 3) if delays else None,
        "mean_s": round(statistics.fmean(delays), 3) if delays else None,
        "check": world.settled_check(len(ids)),
    }


def naive(world: BenchWorld, limit: int | None, concurrency: int) -> dict[str, Any]:
    from service.devtools.bench.naive import (
        NAIVE_PREFETCH,
        NAIVE_QUEUE,
        NAIVE_SEND_TASK,
        make_naive_celery,
    )

    with world.sessions() as session:
        ids = world.backlog[:limit] if limit else world.backlog
        now = datetime.now(UTC)
        for chunk in chunks(ids, SEED_CHUNK):
            session.execute(
                update(Message)
                .where(Message.id.in_(chunk))
                .values(
                    status=MessageStatus.SCHEDULED,
                    scheduled_for=now,
                    expires_at=now + timedelta(hours=2),
                    sent_at=None,
                    provider_id=None,
                    attempts=0,
                )
            )
        session.commit()
    world.progress(
        f"naive baseline: {len(ids):,} messages, one Celery task each, "
        f"--concurrency {concurrency} (one per core), prefetch ×{NAIVE_PREFETCH}"
    )
    celery = str(Path(sys.executable).with_name("celery"))
    worker = world.processes.start(
        "naive",
        celery,
        "-A",
        "service.devtools.bench.naive",
        "worker",
        f"--concurrency={concurrency}",
        "--pool=prefork",
        "--without-gossip",
        "--without-mingle",
        "--loglevel=WARNING",
        "-Q",
        NAIVE_QUEUE,
    )
    wait_until(lambda: pool_ready(worker, concurrency), 60, "the naive pool")
    world.reset_standin()
    producer = make_naive_celery(world.settings)
    cpu_before = tree_cpu_seconds(worker)
    started = time.monotonic()

    def enqueue() -> None:
        # Due now, so sent now: an `eta` would only park each task in the worker's
        # memory first (PERFORMANCE.md's ETA trap), which a competent app avoids.
        with producer.producer_or_acquire() as publisher:
            for message_id in ids:
                producer.send_task(NAIVE_SEND_TASK, args=[message_id], producer=publisher)

    thread = threading.Thread(target=enqueue, daemon=True)
    thread.start()
    done = world.wait_accepted(len(ids), None, "naive")
    thread.join()
    elapsed = done - started
    worker_cpu = tree_cpu_seconds(worker) - cpu_before
    world.processes.stop(worker)
    producer.close()
    return {
        "messages": len(ids),
        "seconds": round(elapsed, 2),
        "per_s": round(len(ids) / elapsed) if elapsed else None,
        "worker_cpu_ms_per_message": round(1000 * worker_cpu / len(ids), 3) if ids else None,
        "check": world.settled_check(len(ids)),
    }
