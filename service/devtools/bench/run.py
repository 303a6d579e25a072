"""`steady bench`: planning, dispatch, latency and webhook ingest, measured for real.

One run, in order, in a scratch world (`service.devtools.bench.scratch`):

1. seed N confirmed SMS subscribers in a time zone where it is now daytime;
2. planning: the planner, in this process, plans every one of them (subscribers/s);
3. dispatch: a real `steady worker` (Celery prefork) drains the backlog through
   the real `twilio` SDK to a local stand-in (messages/s, and the workers' RSS);
4. ceiling: the raw `twilio` SDK, 2 processes × 4 threads, no database, against
   the same stand-in (`service.devtools.bench.ceiling`), just before and just
   after dispatch (the higher is kept): the machine's ceiling, and dispatch as a
   share of it (PERFORMANCE.md);
5. latency: `steady beat` on a 1 s tick while messages fall due at half the
   measured rate; due-to-handoff is `sent_at - scheduled_for` (p50/p95/p99);
6. webhooks: `steady web` takes signed Twilio status callbacks for sent
   messages; the rate counts callbacks answered and persisted per second;
7. naive: the same messages again through the typical Celery app, one task per
   message (`service.devtools.bench.naive`), one pool process per core, and the ratio.

After each sending phase the stand-in's own per-recipient count and the
database are checked: nothing may go out twice, nothing may be left behind.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import secrets
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from service.devtools.bench.scratch import (
    Processes,
    RssSampler,
    free_port,
    scratch_database,
    scratch_redis,
    tree_cpu_seconds,
    wait_until,
    workdir,
)
from service.messages.compose import status_callback_url
from service.pacing.policy import pacing_policy
from service.pacing.rules import PacingPolicy
from service.pacing.window import midday_zone
from service.sending.planner import plan_due
from service.settings import Settings, load_settings
from service.storage.db import session_factory
from service.storage.models import Channel, DeliveryEvent, Message, MessageStatus, Subscriber

TARGETS = {
    "planning_per_s": 10_000,
    "dispatch_per_s": 1_000,
    "dispatch_vs_naive": 3.0,
    "dispatch_vs_ceiling": 0.6,
    "webhooks_per_s": 1_000,
    "worker_rss_mib": 300,
}
SEED_CHUNK = 10_000
STALL_SECONDS = 60.0  # no progress for this long: the phase has failed

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BenchOptions:
    subscribers: int = 10_000
    concurrency: int = 2
    naive: bool = True
    naive_messages: int | None = None  # default: the same load, all N
    webhooks: int | None = None  # default: min(N, 20,000)
    latency_seconds: float = 10.0
    database_url: str | None = None
    broker_url: str | None = None


def _environment(database_url: str, broker_url: str, standin: str, web_port: int) -> dict[str, str]:
    """What every process of the run reads: this run's world and nothing of the caller's."""
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("STEADY_", "TWILIO_", "SENDGRID_"))
    }
    return {
        **inherited,
        "STEADY_ENV": "development",
        "STEADY_DATABASE_URL": database_url,
        "STEADY_BROKER_URL": broker_url,
        "STEADY_REDIS_URL": broker_url,
        "STEADY_PUBLIC_URL": f"http://127.0.0.1:{web_port}",
        "STEADY_SECRET_KEY": secrets.token_hex(16),
        "TWILIO_ACCOUNT_SID": "AC" + secrets.token_hex(16),
        "TWILIO_AUTH_TOKEN": secrets.token_hex(16),
        "TWILIO_FROM_NUMBER": "+15005550006",
        "STEADY_TWILIO_API_URL": standin,
        # The bench measures the machine, not a carrier's per-sender limit.
        "STEADY_SMS_RATE_PER_SECOND": "0",
        "STEADY_TICK_SECONDS": "1",
        "PYTHONUNBUFFERED": "1",
    }


def _exit_on_term(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def run_bench(options: BenchOptions, progress: Progress) -> dict[str, Any]:
    # Stopped from outside (TERM, or INT even when started in the background), the run
    # still unwinds: its processes are stopped and its scratch database dropped.
    signal.signal(signal.SIGTERM, _exit_on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    started = time.monotonic()
    with (
        workdir() as work,
        scratch_database(options.database_url, work) as database_url,
        scratch_redis(options.broker_url, work) as broker_url,
    ):
        standin_port, web_port = free_port(), free_port()
        standin = f"http://127.0.0.1:{standin_port}"
        env = _environment(database_url, broker_url, standin, web_port)
        settings = load_settings(
            **{k: v for k, v in env.items() if k.startswith(("STEADY_", "TWILIO_"))}
        )
        processes = Processes(work, env)
        result: dict[str, Any] = {
            "subscribers": options.subscribers,
            "database": _describe_database(database_url),
            "concurrency": options.concurrency,
            "cpus": os.cpu_count(),
            "targets": TARGETS,
        }
        try:
            processes.start(
                "standin", sys.executable, "-m", "service.devtools.bench.standin", str(standin_port)
            )
            wait_until(
                lambda: httpx.get(f"{standin}/counts").status_code == 200, 15, "the stand-in"
            )
            bench = _Bench(settings, session_factory(database_url), processes, standin, progress)
            result["seed"] = bench.seed(options.subscribers)
            result["planning"] = bench.plan(options.concurrency)
            # The ceiling is taken just before and just after dispatch and the higher
            # one kept: on a shared machine the load drifts, and the ratio should
            # never flatter dispatch by catching the ceiling in a busy moment.
            messages = len(bench.backlog)
            before = bench.ceiling(messages)
            result["dispatch"] = bench.dispatch(options.concurrency)
            after = bench.ceiling(messages)
            result["sdk_ceiling"] = {
                **max(before, after, key=lambda figures: figures["per_s"] or 0),
                "runs_per_s": [before["per_s"], after["per_s"]],
                "check": {
                    "accepted": before["check"]["accepted"] + after["check"]["accepted"],
                    "ok": before["check"]["ok"] and after["check"]["ok"],
                },
            }
            result["dispatch_vs_ceiling"] = round(
                result["dispatch"]["per_s"] / result["sdk_ceiling"]["per_s"], 3
            )
            result["latency"] = bench.latency(options.latency_seconds, result["dispatch"]["per_s"])
            result["webhooks"] = bench.webhooks(
                options.webhooks or min(options.subscribers, 20_000), web_port
            )
            if options.naive:
                result["naive"] = bench.naive(options.naive_messages, os.cpu_count() or 1)
                result["dispatch_vs_naive"] = round(
                    result["dispatch"]["per_s"] / result["naive"]["per_s"], 2
                )
        finally:
            processes.stop_all()
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def _describe_database(url: str) -> str:
    return "postgresql" if url.startswith("postgresql") else "sqlite"


def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


class _Bench:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        processes: Processes,
        standin: str,
        progress: Progress,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.processes = processes
        self.standin = standin
        self.progress = progress
        self.http = httpx.Client(timeout=10)
        self.worker_pid = 0
        self.backlog: list[int] = []  # the messages the planner made: every phase resends these

    # -- seed and plan ------------------------------------------------------------

    def seed(self, count: int) -> dict[str, Any]:
        now = datetime.now(UTC)
        zone = midday_zone(now)
        self.progress(f"seeding {count:,} subscribers ({zone})")
        started = time.monotonic()
        with self.sessions() as session:
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

    def plan(self, processes: int) -> dict[str, Any]:
        """The planner in `processes` processes at once, as overlapping beat ticks run it.

        Each takes its own batches (`FOR UPDATE SKIP LOCKED`); the clock starts once
        every process has imported and connected.
        """
        self.progress(f"planning ({processes} planner processes)")
        now = datetime.now(UTC)
        context = multiprocessing.get_context("spawn")
        ready = context.Barrier(processes + 1)
        results: multiprocessing.Queue[int] = context.Queue()
        database_url = str(self.sessions.kw["bind"].url.render_as_string(hide_password=False))
        workers = [
            context.Process(
                target=_planner_process,
                args=(
                    database_url,
                    pacing_policy(self.settings),
                    self.settings.planner_batch_size,
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
        with self.sessions() as session:
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
            self.backlog = list(session.scalars(select(Message.id).order_by(Message.id)))
        return {
            "planned": planned,
            "reported": reported,
            "processes": processes,
            "made_due": made_due,
            "seconds": round(elapsed, 2),
            "per_s": round(planned / elapsed) if elapsed else None,
        }

    # -- sending ------------------------------------------------------------------

    def _counts(self) -> dict[str, Any]:
        counts: dict[str, Any] = self.http.get(f"{self.standin}/counts").json()
        return counts

    def _reset_standin(self) -> None:
        self.http.delete(f"{self.standin}/counts")

    def _wait_accepted(
        self, expected: int, sampler: RssSampler | None = None, label: str = ""
    ) -> float:
        """Block until the stand-in accepted `expected` messages; returns when (monotonic)."""
        last, last_change = -1, time.monotonic()
        next_note = time.monotonic() + 10
        while True:
            accepted = int(self._counts()["accepted"])
            now = time.monotonic()
            if sampler is not None:
                sampler.sample()
            if accepted >= expected:
                return now
            if accepted != last:
                last, last_change = accepted, now
            elif now - last_change > STALL_SECONDS:
                raise RuntimeError(
                    f"bench: {label} stalled at {accepted:,}/{expected:,}\n"
                    + self.processes.log_tail("worker")
                    + self.processes.log_tail("naive")
                )
            if now >= next_note:
                self.progress(f"  {label}: {accepted:,}/{expected:,}")
                next_note = now + 10
            time.sleep(0.2)

    def _settled_check(self, expected: int) -> dict[str, Any]:
        """The stand-in's log and the database agree: each message once, none left."""
        counts = self._counts()
        with self.sessions() as session:
            by_status = dict(
                session.execute(select(Message.status, func.count()).group_by(Message.status)).all()
            )
            left = _left_behind(session)
        return {
            "accepted": counts["accepted"],
            "duplicates": counts["duplicates"],
            "left_behind": left,
            "db_status": by_status,
            "ok": counts["accepted"] == expected and counts["duplicates"] == 0 and left == 0,
        }

    def _wait_db_settled(self, timeout: float = 30) -> None:
        def settled() -> bool:
            with self.sessions() as session:
                return _left_behind(session) == 0

        wait_until(settled, timeout, "the last results to be recorded")

    def dispatch(self, concurrency: int) -> dict[str, Any]:
        from service.sending.wake import DISPATCH_TASK
        from workers.app import make_celery

        with self.sessions() as session:
            due = (
                session.scalar(
                    select(func.count())
                    .select_from(Message)
                    .where(Message.status == MessageStatus.SCHEDULED)
                )
                or 0
            )
        self.progress(f"dispatch: {due:,} due messages, steady worker --concurrency {concurrency}")
        worker = self.processes.steady(
            "worker", "worker", "--concurrency", str(concurrency), "--loglevel", "WARNING"
        )
        sampler = RssSampler([worker])
        wait_until(lambda: _pool_ready(worker, concurrency), 60, "the Celery pool")
        self.worker_pid = worker
        sampler.sample()
        producer = make_celery(self.settings)
        self._reset_standin()
        cpu_before = tree_cpu_seconds(worker)
        started = time.monotonic()
        for _ in range(concurrency):
            producer.send_task(DISPATCH_TASK)
        done = self._wait_accepted(due, sampler, "dispatch")
        elapsed = done - started
        self._wait_db_settled()
        worker_cpu = tree_cpu_seconds(worker) - cpu_before
        sampler.sample()
        check = self._settled_check(due)
        with self.sessions() as session:
            sent = session.scalar(
                select(func.count())
                .select_from(Message)
                .where(Message.status == MessageStatus.SENT)
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

    def ceiling(self, messages: int) -> dict[str, Any]:
        """The raw SDK's ceiling on this machine, now, against the same stand-in."""
        from service.devtools.bench.ceiling import measure_ceiling

        self.progress(f"ceiling: {messages:,} creates, raw twilio SDK, 2 processes × 4 threads")
        self._reset_standin()
        token = self.settings.twilio_auth_token
        figures = measure_ceiling(
            self.standin,
            str(self.settings.twilio_account_sid),
            token.get_secret_value() if token else "",
            messages,
        )
        counts = self._counts()
        figures["check"] = {
            "accepted": counts["accepted"],
            "ok": counts["accepted"] == messages and counts["duplicates"] == 0,
        }
        return figures

    def latency(self, seconds: float, dispatch_rate: float) -> dict[str, Any]:
        """Messages fall due at half the measured rate; beat's tick wakes the pool."""
        rate = max(1.0, dispatch_rate / 2)
        count = int(rate * seconds)
        self.progress(f"latency: {count:,} messages due at {rate:,.0f}/s over {seconds:.0f} s")
        with self.sessions() as session:
            # Nothing new to plan while we measure; then reuse sent rows as fresh due ones.
            session.execute(update(Subscriber).values(next_plan_at=None))
            ids = self.backlog[:count]
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
        self._reset_standin()
        beat = self.processes.steady(
            "beat", "beat", "--schedule", str(self.processes.workdir / "beat-schedule")
        )
        try:
            self._wait_accepted(len(ids), None, "latency")
            self._wait_db_settled()
        finally:
            self.processes.stop(beat)
        with self.sessions() as session:
            rows = session.execute(
                select(Message.sent_at, Message.scheduled_for).where(Message.id.in_(ids))
            ).all()
        delays = sorted((sent - due).total_seconds() for sent, due in rows if sent is not None)
        return {
            "messages": len(ids),
            "rate_per_s": round(rate),
            "tick_seconds": self.settings.tick_seconds,
            "p50_s": round(_percentile(delays, 0.50), 3),
            "p95_s": round(_percentile(delays, 0.95), 3),
            "p99_s": round(_percentile(delays, 0.99), 3),
            "max_s": round(delays[-1], 3) if delays else None,
            "mean_s": round(statistics.fmean(delays), 3) if delays else None,
            "check": self._settled_check(len(ids)),
        }

    # -- webhooks -----------------------------------------------------------------

    def webhooks(self, count: int, web_port: int) -> dict[str, Any]:
        from twilio.request_validator import RequestValidator

        self.processes.stop(self.worker_pid)  # the pool is idle now; give the web its CPU
        self.progress(f"webhooks: {count:,} signed status callbacks to steady web --workers 2")
        web = self.processes.steady("web", "web", "--port", str(web_port), "--workers", "2")
        base = f"http://127.0.0.1:{web_port}"
        wait_until(lambda: httpx.get(f"{base}/healthz").status_code == 200, 30, "steady web")
        with self.sessions() as session:
            rows = session.execute(
                select(Message.id, Message.provider_id, Channel.address)
                .join(Channel, Channel.id == Message.channel_id)
                .where(Message.status == MessageStatus.SENT, Message.provider_id.is_not(None))
                .order_by(Message.id)
                .limit(count)
            ).all()
        token = self.settings.twilio_auth_token
        validator = RequestValidator(token.get_secret_value() if token else "")
        requests: list[tuple[str, dict[str, str], str]] = []
        for message_id, sid, address in rows:
            url = status_callback_url(self.settings, message_id)
            form = {
                "AccountSid": str(self.settings.twilio_account_sid),
                "ApiVersion": "2010-04-01",
                "From": str(self.settings.twilio_from_number),
                "MessageSid": str(sid),
                "MessageStatus": "delivered",
                "SmsSid": str(sid),
                "SmsStatus": "delivered",
                "To": address,
            }
            requests.append((url, form, validator.compute_signature(url, form)))
        cpu_before = tree_cpu_seconds(web)
        started = time.monotonic()
        statuses = asyncio.run(_post_all(requests, base, self.settings.public_url))
        elapsed = time.monotonic() - started
        web_cpu = tree_cpu_seconds(web) - cpu_before
        self.processes.stop(web)
        with self.sessions() as session:
            persisted = session.scalar(select(func.count()).select_from(DeliveryEvent)) or 0
            delivered = session.scalar(
                select(func.count())
                .select_from(Message)
                .where(Message.status == MessageStatus.DELIVERED)
            )
        return {
            "callbacks": len(requests),
            "answered_200": statuses.get(200, 0),
            "other_statuses": {str(k): v for k, v in statuses.items() if k != 200},
            "persisted": persisted,
            "messages_delivered": delivered,
            "seconds": round(elapsed, 2),
            "per_s": round(persisted / elapsed) if elapsed else None,
            "web_cpu_ms_per_callback": round(1000 * web_cpu / len(requests), 3)
            if requests
            else None,
        }

    # -- the naive baseline --------------------------------------------------------

    def naive(self, limit: int | None, concurrency: int) -> dict[str, Any]:
        from service.devtools.bench.naive import (
            NAIVE_PREFETCH,
            NAIVE_QUEUE,
            NAIVE_SEND_TASK,
            make_naive_celery,
        )

        with self.sessions() as session:
            ids = self.backlog[:limit] if limit else self.backlog
            now = datetime.now(UTC)
            for chunk in _chunks(ids, SEED_CHUNK):
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
        self.progress(
            f"naive baseline: {len(ids):,} messages, one Celery task each, "
            f"--concurrency {concurrency} (one per core), prefetch ×{NAIVE_PREFETCH}"
        )
        celery = str(Path(sys.executable).with_name("celery"))
        worker = self.processes.start(
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
        wait_until(lambda: _pool_ready(worker, concurrency), 60, "the naive pool")
        self._reset_standin()
        producer = make_naive_celery(self.settings)
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
        done = self._wait_accepted(len(ids), None, "naive")
        thread.join()
        elapsed = done - started
        worker_cpu = tree_cpu_seconds(worker) - cpu_before
        self.processes.stop(worker)
        producer.close()
        return {
            "messages": len(ids),
            "seconds": round(elapsed, 2),
            "per_s": round(len(ids) / elapsed) if elapsed else None,
            "worker_cpu_ms_per_message": round(1000 * worker_cpu / len(ids), 3) if ids else None,
            "check": self._settled_check(len(ids)),
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


def _left_behind(session: Session) -> int:
    """Rows that were due and are not settled (later nudges the planner made don't count)."""
    due_now = (Message.status == MessageStatus.SCHEDULED) & (
        Message.scheduled_for <= datetime.now(UTC)
    )
    return (
        session.scalar(
            select(func.count())
            .select_from(Message)
            .where((Message.status == MessageStatus.SENDING) | due_now)
        )
        or 0
    )


def _pool_ready(parent: int, concurrency: int) -> bool:
    from service.devtools.bench.scratch import children

    return len(children(parent)) >= concurrency


def _chunks(values: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


async def _post_all(
    requests: list[tuple[str, dict[str, str], str]], base: str, public_url: str
) -> dict[int, int]:
    """POST every callback with 64 connections in flight; counts answers by status."""
    import aiohttp

    statuses: dict[int, int] = {}
    queue: asyncio.Queue[tuple[str, dict[str, str], str]] = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)

    async def client(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            url, form, signature = queue.get_nowait()
            async with session.post(
                base + url[len(public_url) :],
                data=form,
                headers={"X-Twilio-Signature": signature},
            ) as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1

    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(client(session) for _ in range(64)))
    return statuses
