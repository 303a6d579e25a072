"""`steady capacity [--json]`: whether the SMS sender's budget carries the plan.

The figures come from `service.sending.capacity.estimate` (docs/operators.md,
"Capacity", lists the JSON fields). Exit status: 0 when the plan fits (`ok`, or
`warn` from 80 %), 1 when today's or next week's plan, or the window-open peak,
is over the budget, 2 when the settings cannot be used.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from service.settings import ConfigurationError, load_settings

EXIT_OVER = 1
EXIT_USAGE = 2
console = Console(soft_wrap=True, highlight=False)
errors = Console(stderr=True, soft_wrap=True, highlight=False)


def _percent(value: float | None) -> str:
    return "no budget set" if value is None else f"{value:.0%}"


def _render(report: dict[str, Any]) -> None:
    budget = report["budget"]
    table = Table("", "SMS segments a day", "of the budget", title="steady capacity")
    for name, label in (("today", "today"), ("next_week", "next week")):
        row = report[name]
        table.add_row(
            f"{label} ({row['sms_subscribers']:,} SMS subscribers)",
            f"{row['segments_per_day']:,.0f} ({row['nudges_per_day']:,.0f} nudges, "
            f"{row['replies_per_day']:,.0f} replies)",
            _percent(row["utilisation"]),
        )
    peak = report["per_second"]
    table.add_row(
        f"window opening ({peak['busiest_zone_subscribers']:,} in the busiest zone)",
        f"{peak['opening_segments_per_second']:,.2f} a second over "
        f"{peak['spread_seconds'] // 60:,} min",
        _percent(peak["utilisation"]),
    )
    console.print(table)
    per_message = report["segments_per_message"]
    day = budget["segments_per_day"]
    console.print(
        f"budget: {budget['rate_per_second']:g} segments/s × {budget['window_seconds']:,} s of "
        f"window, daily cap {budget['segments_per_day_cap'] or 'none'} → "
        f"{'unlimited' if day is None else f'{day:,.0f}'} segments a day; "
        f"a nudge is {per_message['nudge_mean']:.2f} segments on average "
        f"(at most {per_message['nudge_max']}), a reply {per_message['reply_mean']:.2f}"
    )
    status = report["status"]
    colour = {"ok": "green", "warn": "yellow", "over": "red"}[status]
    console.print(f"status: [{colour}]{status}[/{colour}] (warn from {report['warn_at']:.0%})")


def capacity(
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Whether the senders' budgets (segments a second and a day) carry today's and next
    week's plan; exit 1 when they do not."""
    from service.sending.capacity import estimate
    from service.storage.db import read_session_factory

    try:
        settings = load_settings()
    except ConfigurationError as exc:
        errors.print(str(exc), markup=False)
        raise typer.Exit(EXIT_USAGE) from None
    sessions = read_session_factory(settings.database_url, settings.database_replica_url)
    with sessions() as session:
        report = estimate(settings, session, datetime.now(UTC), replies=True)
    if json_output:
        typer.echo(json.dumps(report, indent=2))
    else:
        _render(report)
    if report["status"] == "over":
        raise typer.Exit(EXIT_OVER)
