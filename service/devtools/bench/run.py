"""`steady bench`: planning, dispatch, latency, webhook ingest and import, measured for real.

One run, in order, in a scratch world (`service.devtools.bench.scratch`):

1. seed N confirmed SMS subscribers in a time zone where it is now daytime;
2. planning: the planner, in 2 processes, plans every one of them (subscribers/s, and
   CPU per subscriber); then, in a scratch database of its own, N returning subscribers
   (a fortnight of history) are planned with STEADY_EXPERIMENT off and on
   (`service.devtools.bench.returning`); `--only planning` stops here;
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
   message (`service.devtools.bench.naive`), one pool process per core, and the ratio;
8. import: `steady subscribers import` of a realistic file of N rows (or
   `--import-rows`), bad rows among them (`service.devtools.bench.importing`): rows/s
   and CPU per row. Last, so the confirmations it queues meet no worker.

After each sending phase the stand-in's own per-recipient count and the
database are checked: nothing may go out twice, nothing may be left behind.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from service.devtools.bench import ceiling, importing, planning, returning, sending, webhooks
from service.devtools.bench.scratch import Processes, scratch_database, scratch_redis, workdir
from service.devtools.bench.world import BenchWorld, Progress
from service.devtools.servers import free_port, wait_until
from service.settings import load_settings
from service.storage.db import session_factory

TARGETS = {
    "planning_per_s": 10_000,
    "dispatch_per_s": 1_000,
    "dispatch_vs_naive": 3.0,
    "dispatch_vs_ceiling": 0.6,
    "webhooks_per_s": 1_000,
    "worker_rss_mib": 300,
    "import_per_s": 10_000,
}


@dataclass(frozen=True)
class BenchOptions:
    subscribers: int = 10_000
    concurrency: int = 2
    naive: bool = True
    naive_messages: int | None = None  # default: the same load, all N
    webhooks: int | None = None  # default: min(N, 20,000)
    latency_seconds: float = 10.0
    import_rows: int | None = None  # default: N; 0 leaves the import phase out
    returning: bool = True  # also plan returning subscribers, experiment off and on
    only: str | None = None  # "planning": stop after the planning phases
    database_url: str | None = None
    broker_url: str | None = None


def scratch_environment(database_url: str) -> dict[str, str]:
    """The caller's environment without any of its Steady, Twilio or SendGrid settings,
    pointed at the scratch database with a throwaway secret key."""
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("STEADY_", "TWILIO_", "SENDGRID_"))
    }
    return {
        **inherited,
        "STEADY_ENV": "development",
        "STEADY_DATABASE_URL": database_url,
        "STEADY_SECRET_KEY": secrets.token_hex(16),
        "PYTHONUNBUFFERED": "1",
    }


def _environment(database_url: str, broker_url: str, standin: str, web_port: int) -> dict[str, str]:
    """What every process of the run reads: this run's world and nothing of the caller's."""
    return {
        **scratch_environment(database_url),
        "STEADY_BROKER_URL": broker_url,
        "STEADY_REDIS_URL": broker_url,
        "STEADY_PUBLIC_URL": f"http://127.0.0.1:{web_port}",
        "TWILIO_ACCOUNT_SID": "AC" + secrets.token_hex(16),
        "TWILIO_AUTH_TOKEN": secrets.token_hex(16),
        "TWILIO_FROM_NUMBER": "+15005550006",
        "STEADY_TWILIO_API_URL": standin,
        # The bench measures the machine, not a carrier's per-sender limit.
        "STEADY_SMS_RATE_PER_SECOND": "0",
        "STEADY_TICK_SECONDS": "1",
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
            "scratch_database": make_url(database_url).database,  # dropped at the end
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
            world = BenchWorld(
                settings, session_factory(database_url), processes, standin, progress
            )
            result["seed"] = planning.seed(world, options.subscribers)
            result["planning"] = planning.plan(world, options.concurrency)
            if options.returning:
                result["planning_returning"] = _returning(options, work, world)
            if options.only == "planning":
                return {**result, "seconds": round(time.monotonic() - started, 1)}
            # The ceiling is taken just before and just after dispatch and the higher
            # one kept: on a shared machine the load drifts, and the ratio should
            # never flatter dispatch by catching the ceiling in a busy moment.
            before = ceiling.phase(world, len(world.backlog))
            result["dispatch"] = sending.dispatch(world, options.concurrency)
            result["sdk_ceiling"] = ceiling.best(before, ceiling.phase(world, len(world.backlog)))
            result["dispatch_vs_ceiling"] = round(
                result["dispatch"]["per_s"] / result["sdk_ceiling"]["per_s"], 3
            )
            result["latency"] = sending.latency(
                world, options.latency_seconds, result["dispatch"]["per_s"]
            )
            result["webhooks"] = webhooks.webhooks(
                world, options.webhooks or min(options.subscribers, 20_000), web_port
            )
            if options.naive:
                cores = os.cpu_count() or 1  # the typical app: one pool process per core
                result["naive"] = sending.naive(world, options.naive_messages, cores)
                result["dispatch_vs_naive"] = round(
                    result["dispatch"]["per_s"] / result["naive"]["per_s"], 2
                )
            import_rows = (
                options.subscribers if options.import_rows is None else options.import_rows
            )
            if import_rows > 0:
                processes.stop_all()  # no worker may plan or send what the import queues
                result["import"] = importing.import_phase(
                    world.sessions, env, work, import_rows, progress
                )
        finally:
            processes.stop_all()
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def _returning(options: BenchOptions, work: Path, main: BenchWorld) -> dict[str, Any]:
    """The returning subscribers' planning, in a scratch database of their own."""
    with scratch_database(options.database_url, work, "steady-bench-returning") as url:
        world = BenchWorld(
            main.settings, session_factory(url), main.processes, main.standin, main.progress
        )
        try:
            return returning.returning(world, options.subscribers, options.concurrency)
        finally:
            world.http.close()


def _describe_database(url: str) -> str:
    return "postgresql" if url.startswith("postgresql") else "sqlite"
