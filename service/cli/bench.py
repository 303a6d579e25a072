"""`steady bench`: planning, dispatch, latency, webhook ingest and import, measured
(PERFORMANCE.md)."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer
from rich.console import Console

console = Console()
errors = Console(stderr=True)


def bench(
    subscribers: Annotated[
        int, typer.Option(help="Synthetic subscribers (one message each).")
    ] = 10_000,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    concurrency: Annotated[int, typer.Option(help="Celery pool processes.")] = 2,
    naive: Annotated[bool, typer.Option(help="Also run the naive baseline.")] = True,
    naive_messages: Annotated[
        int | None, typer.Option(help="Messages for the naive baseline (default: all).")
    ] = None,
    webhooks: Annotated[
        int | None, typer.Option(help="Status callbacks to post (default: up to 20,000).")
    ] = None,
    latency_seconds: Annotated[
        float, typer.Option(help="How long messages fall due one by one in the latency phase.")
    ] = 10.0,
    import_rows: Annotated[
        int | None,
        typer.Option(help="Rows for the import phase (default: --subscribers; 0: no import)."),
    ] = None,
    returning: Annotated[
        bool,
        typer.Option(help="Also plan N returning subscribers, STEADY_EXPERIMENT off and on."),
    ] = True,
    only: Annotated[
        str | None, typer.Option(help="'planning': stop after the planning phases.")
    ] = None,
) -> None:
    """Measure planning, dispatch, latency, webhook ingest and import in a scratch database."""
    from service.devtools.bench.report import render
    from service.devtools.bench.run import BenchOptions, run_bench

    if only not in (None, "planning"):
        raise typer.BadParameter(
            "the only phase that runs alone is 'planning'", param_hint="--only"
        )

    options = BenchOptions(
        subscribers=subscribers,
        concurrency=concurrency,
        naive=naive,
        naive_messages=naive_messages,
        webhooks=webhooks,
        latency_seconds=latency_seconds,
        import_rows=import_rows,
        returning=returning,
        only=only,
        database_url=os.environ.get("STEADY_BENCH_DATABASE_URL") or None,
        broker_url=os.environ.get("STEADY_BENCH_BROKER_URL") or None,
    )

    def progress(line: str) -> None:
        errors.print(f"[dim]bench: {line}[/dim]")

    result = run_bench(options, progress)
    if json_output:
        typer.echo(json.dumps(result, indent=2, default=str))
    else:
        render(result, console)
