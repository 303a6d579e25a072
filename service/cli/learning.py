"""`steady decisions`, `steady evaluate`, `steady simulate` (INTERFACE.md §4).

Reports read the replica when one is configured (``STEADY_DATABASE_REPLICA_URL``),
else the primary.
"""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from service.cli.common import parse_time, settings_or_exit

console = Console()
errors = Console(stderr=True)
EXIT_BAD_INPUT = 2


def decisions_command(
    since: Annotated[
        str | None, typer.Option(help="Only decisions at or after this ISO-8601 time.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array instead of CSV.")] = False,
) -> None:
    """The decision log, one row per decision point per subscriber, oldest first."""
    from service.reporting.decision_log import EXTRA_FIELDS, FIELDS, iter_rows
    from service.reporting.evaluation import read_url
    from service.storage.db import session_factory

    start = parse_time(since, "--since") if since is not None else None
    out = sys.stdout
    with session_factory(read_url(settings_or_exit()))() as session:
        rows = iter_rows(session, datetime.now(UTC), since=start)
        if as_json:
            out.write("[")
            for index, row in enumerate(rows):
                out.write(("," if index else "") + "\n  " + json.dumps(row))
            out.write("\n]\n")
            return
        writer = csv.DictWriter(out, fieldnames=[*FIELDS, *EXTRA_FIELDS], lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {
                    **row,
                    "options": " ".join(row["options"]),
                    "probabilities": json.dumps(row["probabilities"]),
                }
            )


def _read_log(path: Path) -> list[Any]:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        errors.print(f"[red]--input: cannot read {path}: {exc.strerror}[/red]")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        errors.print(f"[red]--input: {path} is not JSON ({exc})[/red]")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if not isinstance(rows, list):
        errors.print(f"[red]--input: {path} must hold a JSON array of decisions[/red]")
        raise typer.Exit(EXIT_BAD_INPUT)
    return rows


def evaluate_command(
    input_file: Annotated[
        Path | None,
        typer.Option("--input", help="An exported log with outcomes instead of the database."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
    policy: Annotated[
        list[str] | None,
        typer.Option(help="Also estimate this candidate policy's outcome (repeatable)."),
    ] = None,
) -> None:
    """Each option's effect against no nudge, with 95% intervals; candidate policies' values."""
    from service.learning.decision_log import DecisionLogError
    from service.reporting.evaluation import POLICIES, evaluate, evaluate_database, read_url
    from service.storage.db import session_factory

    names = policy or []
    unknown = [name for name in names if name not in POLICIES]
    if unknown:
        errors.print(
            f"[red]--policy: unknown {', '.join(unknown)}; one of {', '.join(POLICIES)}[/red]"
        )
        raise typer.Exit(EXIT_BAD_INPUT)
    if input_file is None:
        sessions = session_factory(read_url(settings_or_exit()))
        result = evaluate_database(sessions, datetime.now(UTC), names)
    else:
        try:
            result = evaluate(_read_log(input_file), names)
        except DecisionLogError as exc:
            errors.print(f"[red]--input: {exc}[/red]")
            raise typer.Exit(EXIT_BAD_INPUT) from None
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    print_evaluation(result)


def print_evaluation(result: dict[str, Any]) -> None:
    console.print(
        f"{result['decisions']} decisions ({result['available_decisions']} available) "
        f"of {result['people']} people; outcome: no contact of their own in the next 24 h",
        highlight=False,
    )
    table = Table("option", "scale", "estimate", "95% interval", "people", "decisions")
    for effect in result["effects"]:
        table.add_row(
            effect["name"],
            effect["scale"],
            f"{effect['estimate']:+.3f}",
            f"[{effect['ci_low']:+.3f}, {effect['ci_high']:+.3f}]",
            str(effect["people"]),
            str(effect["decisions"]),
        )
    console.print(table)
    for note in result["notes"]:
        band = f" (from day {note['days_from']})" if note.get("days_from") is not None else ""
        console.print(
            f"not estimated: {note['name']} {note['scale']}{band}: {note['reason']}",
            highlight=False,
        )
    for name, value in result.get("policies", {}).items():
        if "error" in value:
            console.print(f"policy {name}: {value['error']}", highlight=False)
            continue
        for method in ("logged", "ipw", "doubly_robust"):
            v = value[method]
            console.print(
                f"policy {name} {method}: {v['estimate']:.3f} "
                f"[{v['ci_low']:.3f}, {v['ci_high']:.3f}]",
                highlight=False,
            )


def simulate_command(
    subscribers: Annotated[int, typer.Option(min=4, help="Simulated people.")] = 200,
    days: Annotated[int, typer.Option(min=3, help="Simulated days.")] = 28,
    seed: Annotated[int, typer.Option(help="Seed of the people, their texts and the draws.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Simulated people with known effects through the real planner; truth beside estimate."""
    from service.devtools.simulate.report import render, summarise
    from service.devtools.simulate.run import SimulationOptions, simulate

    run = simulate(SimulationOptions(subscribers=subscribers, days=days, seed=seed))
    summary = summarise(run)
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        return
    render(summary, console)
