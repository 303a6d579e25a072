"""`steady`: the command line (INTERFACE.md §4)."""

from __future__ import annotations

import json
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from service.cli.bench import bench
from service.cli.capacity import capacity
from service.cli.common import parse_time, settings_or_exit
from service.cli.learning import decisions_command, evaluate_command, simulate_command
from service.cli.operations import archive, health, messages
from service.cli.ops import config_app, send_test, subscribers_app
from service.settings import Settings

if TYPE_CHECKING:
    from service.sending.reconcile import ReconcileReport

app = typer.Typer(help="Steady: scheduled nudges through a separation.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
# Operator commands (service/cli/ops.py): subscribers import/export/erase, config check.
app.add_typer(subscribers_app, name="subscribers")
app.add_typer(config_app, name="config")
app.command("send-test")(send_test)
app.command("capacity")(capacity)  # service/cli/capacity.py
app.command("bench")(bench)  # service/cli/bench.py
# Learning what helps (service/cli/learning.py).
app.command("decisions")(decisions_command)
app.command("evaluate")(evaluate_command)
app.command("simulate")(simulate_command)
# Operations (service/cli/operations.py): the message log, archive, health.
app.command("messages")(messages)
app.command("archive")(archive)
app.command("health")(health)
console = Console()
errors = Console(stderr=True)


def parse_now(value: str | None) -> datetime:
    """`--now`: the current time when not given."""
    return datetime.now(UTC) if value is None else parse_time(value, "--now")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply Alembic migrations up to head."""
    from service.storage.db import current_revision, upgrade

    settings = settings_or_exit()
    upgrade(settings.database_url)
    console.print(f"database at revision {current_revision(settings.database_url)}")


@app.command()
def tick(
    now: Annotated[
        str | None, typer.Option(help="ISO-8601 time to run as (default: now, UTC).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Plan and show, send nothing.")
    ] = False,
) -> None:
    """One planning and dispatch pass, in-process; one line per message."""
    from service.logs import configure_logging
    from service.sending.runtime import Runtime

    configure_logging(json=False)
    settings = settings_or_exit()
    at = parse_now(now)
    report = Runtime.from_settings(settings).tick(at, dry_run=dry_run)
    for subscriber_id, plan, channel in report.plan.planned:
        verb = "would plan" if dry_run else "planned"
        console.print(
            f"{verb} subscriber={subscriber_id} {channel} {plan.kind} {plan.template} "
            f"rule={plan.rule} for={plan.scheduled_for.isoformat()}",
            highlight=False,
        )
    for row in report.due:
        console.print(
            f"would send message={row.id} {row.channel} {row.kind} {row.template} rule={row.rule}",
            highlight=False,
        )
    for outcome in report.dispatch.outcomes:
        extra = outcome.provider_id or outcome.error_code or outcome.detail or ""
        console.print(
            f"message={outcome.message_id} {outcome.channel} {outcome.kind} {outcome.template} "
            f"rule={outcome.rule} -> {outcome.status} {extra}".rstrip(),
            highlight=False,
        )
    if report.dispatch.expired or report.dispatch.unknown:
        console.print(f"expired={report.dispatch.expired} unknown={report.dispatch.unknown}")
    _print_reconciled(report.reconcile)
    if not (
        report.plan.planned or report.due or report.dispatch.outcomes or report.reconcile.claimed
    ):
        console.print("nothing due", highlight=False)


def _print_reconciled(report: ReconcileReport) -> None:
    """One line per reconciled message: ids and outcomes only."""
    for message_id, outcome in sorted(report.settled.items()):
        console.print(f"message={message_id} unknown -> {outcome}", highlight=False)
    for message_id, reason in sorted(report.left_unknown.items()):
        console.print(f"message={message_id} still unknown ({reason})", highlight=False)


@app.command()
def reconcile(
    now: Annotated[
        str | None, typer.Option(help="ISO-8601 time to run as (default: now, UTC).")
    ] = None,
) -> None:
    """Settle one batch of `unknown` messages against the providers (every tick does this too)."""
    from service.logs import configure_logging
    from service.sending.runtime import Runtime

    configure_logging(json=False)
    report = Runtime.from_settings(settings_or_exit()).reconcile(parse_now(now))
    _print_reconciled(report)
    if not report.claimed:
        console.print("nothing to reconcile", highlight=False)


@app.command()
def stats(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Delivery and engagement figures from the database."""
    from service.reporting import stats as figures
    from service.storage.db import read_session_factory

    settings = settings_or_exit()
    sessions = read_session_factory(settings.database_url, settings.database_replica_url)
    with sessions() as session:
        result = figures.collect(session, datetime.now(UTC))
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    table = Table("figure", "value", title="Steady", title_justify="left")
    for section in ("subscribers", "messages", "delivery_events"):
        for key, value in result[section].items():
            table.add_row(f"{section}.{key}", str(value))
    for kind, counts in result["channels"].items():
        for status, value in counts.items():
            table.add_row(f"channels.{kind}.{status}", str(value))
    for key in ("opt_outs", "suppressions"):
        table.add_row(key, str(result[key]))
    table.add_row("queue.due", str(result["queue"]["due"]))
    table.add_row("queue.lag_seconds", f"{result['queue']['lag_seconds']:.0f}")
    console.print(table)


@app.command()
def web(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes.")] = 1,
    forwarded_allow_ips: Annotated[
        str,
        typer.Option(
            envvar="FORWARDED_ALLOW_IPS",
            help="Proxies trusted for X-Forwarded-* (comma-separated; '*' in a container).",
        ),
    ] = "127.0.0.1",
) -> None:
    """The web process (uvicorn), for production behind a proxy."""
    import uvicorn

    from service.logs import configure_logging

    settings = settings_or_exit()
    configure_logging(json=True, level=settings.log_level)
    uvicorn.run(
        "service.web.asgi:app",
        host=host,
        port=port,
        workers=workers,
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        # uvicorn's own lines (startup, access log) go through Steady's JSON handler.
        log_config=None,
        log_level=settings.log_level.lower(),
    )


def _celery_ready(settings: Settings) -> None:
    if not settings.broker_url:
        errors.print("[red]STEADY_BROKER_URL is not set: `steady run` needs no broker.[/red]")
        raise typer.Exit(2)


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Worker processes (prefork).")] = 2,
    loglevel: Annotated[
        str | None, typer.Option(help="Log level (default: STEADY_LOG_LEVEL).")
    ] = None,
    hostname: Annotated[
        str | None, typer.Option(help="Node name (default: celery@<host name>).")
    ] = None,
) -> None:
    """A Celery worker (needs STEADY_BROKER_URL); readiness in STEADY_STATE_DIR/worker.ready."""
    settings = settings_or_exit()
    _celery_ready(settings)
    from service.logs import configure_logging
    from workers.app import celery_app
    from workers.health import ensure_state_dir

    level = (loglevel or settings.log_level).upper()
    configure_logging(json=True, level=level)
    ensure_state_dir(settings.state_dir)
    celery_app.worker_main(
        [
            "--quiet",  # no banner: every line is JSON
            "worker",
            f"--loglevel={level}",
            f"--concurrency={concurrency}",
            "--pool=prefork",
            "--without-gossip",
            "--without-mingle",
            *([f"--hostname={hostname}"] if hostname else []),
        ]
    )


@app.command()
def beat(
    schedule: Annotated[
        Path | None,
        typer.Option(help="Beat's schedule file (default: STEADY_STATE_DIR/beat-schedule)."),
    ] = None,
) -> None:
    """Celery beat: plans and dispatches at start, then wakes the planner and the dispatcher
    every tick (needs STEADY_BROKER_URL); readiness in STEADY_STATE_DIR/beat.ready."""
    settings = settings_or_exit()
    _celery_ready(settings)
    from service.logs import configure_logging
    from workers.app import celery_app
    from workers.health import ensure_state_dir

    configure_logging(json=True, level=settings.log_level)
    # Beat sends tasks by name: it need not import them (and the whole service with
    # them), which keeps its start, and so the first send, fast.
    celery_app.conf.include = []
    state_dir = ensure_state_dir(settings.state_dir)
    if schedule is None:
        schedule = state_dir / "beat-schedule"
    else:
        schedule.parent.mkdir(parents=True, exist_ok=True)
    celery_app.start(
        ["--quiet", "beat", f"--loglevel={settings.log_level}", f"--schedule={schedule}"]
    )


@app.command()
def run(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
) -> None:
    """All-in-one: web, planner and dispatcher in one process (SQLite, outbox)."""
    import uvicorn

    from service.logs import configure_logging
    from service.sending.runtime import Runtime
    from service.sending.wake import ThreadWaker
    from service.storage.db import upgrade
    from service.web.app import create_app

    settings = settings_or_exit()
    configure_logging(json=False, level=settings.log_level)
    if "public_url" not in settings.model_fields_set:
        # Links in messages should reach this very process unless told otherwise.
        settings = settings.model_copy(update={"public_url": f"http://{host}:{port}"})
    upgrade(settings.database_url)
    runtime = Runtime.from_settings(settings)
    waker = ThreadWaker()
    stop = threading.Event()

    def ticker() -> None:
        while not stop.is_set():
            try:
                runtime.tick(datetime.now(UTC))
            except Exception:
                import structlog

                structlog.get_logger("steady.run").exception("tick_failed")
            waker.wait(settings.tick_seconds)

    thread = threading.Thread(target=ticker, name="steady-ticker", daemon=True)
    thread.start()
    console.print(f"Steady is running at http://{host}:{port}/  (database {settings.database_url})")
    try:
        uvicorn.run(create_app(settings, waker=waker), host=host, port=port, log_level="warning")
    finally:
        stop.set()
        waker.event.set()
        thread.join(timeout=5)


@app.command()
def sandbox(
    port: Annotated[int, typer.Option(help="Port for both APIs.")] = 8765,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    signing_key: Annotated[
        Path | None,
        typer.Option(help="PEM EC P-256 key for signing events (keeps the public key stable)."),
    ] = None,
) -> None:
    """Local stand-ins for the Twilio and SendGrid APIs, with signed callbacks."""
    from service.devtools.sandbox.server import run_sandbox

    run_sandbox(host, port, settings_or_exit(), signing_key_file=signing_key)


@app.command()
def demo(
    decisions: Annotated[
        Path | None,
        typer.Option(help="Also write the decision log, with outcomes, to this JSON file."),
    ] = None,
    experiment: Annotated[
        bool, typer.Option("--experiment", help="Run with STEADY_EXPERIMENT=on.")
    ] = False,
) -> None:
    """A simulated fortnight for three personas, printed as a timeline."""
    from service.devtools.demo.show import run_demo

    run_demo(console, decisions=decisions, experiment=experiment)


def main() -> None:
    from sqlalchemy.exc import OperationalError, ProgrammingError

    try:
        app()
    except (OperationalError, ProgrammingError) as exc:
        # An operator's command against a database that is down or not migrated:
        # one line saying which, not a traceback (the statement may carry addresses).
        missing = "no such table" in str(exc.orig) or "does not exist" in str(exc.orig)
        hint = " (run `steady db upgrade`)" if missing else ""
        first = str(exc.orig).splitlines()[0] if str(exc.orig) else type(exc.orig).__name__
        errors.print(f"database error: {first}{hint}", markup=False)
        raise SystemExit(1) from None
