"""Print a `steady bench` result as a table, each figure next to its target."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _mark(ok: bool) -> str:
    return "[green]✓[/green]" if ok else "[red]✗[/red]"


def import_rows_text(result: dict[str, Any]) -> list[tuple[str, str]]:
    """The import phase's figures as (label, text) lines, for the table and `importing`."""
    phase = result["import"]
    cpu = phase["cpu_us_per_row"]
    parts = [f"importer {cpu['importer']:.0f}", f"helpers {cpu['helpers']:.0f}"]
    if cpu["postgresql"] is not None:
        parts.append(f"PostgreSQL {cpu['postgresql']:.0f}")
    check = phase["check"]
    return [
        ("import rate (after start-up)", f"{phase['per_s']:,} rows/s"),
        (
            "  whole command",
            f"{phase['rows']:,} rows in {phase['seconds']:.1f} s = "
            f"{phase['per_s_whole_command']:,} rows/s (start-up {phase['startup_seconds']:.1f} s)",
        ),
        (
            "  CPU per row",
            " + ".join(parts) + f" = {cpu['total']:.0f} µs → "
            f"{phase['per_s_on_2_idle_cores']:,} rows/s on 2 idle cores",
        ),
        (
            "  bad rows named / people added",
            f"{check['bad_rows_named']:,} of {phase['bad']:,} / "
            f"{check['added']['subscribers']:,} of {check['expected']['subscribers']:,}",
        ),
        ("  load average at start", phase["load_average"]),
    ]


def render(result: dict[str, Any], console: Console) -> None:
    targets = result["targets"]
    console.print(
        f"[bold]steady bench[/bold]: {result['subscribers']:,} subscribers · "
        f"{result['database']} (scratch) · Celery prefork × {result['concurrency']} · "
        f"{result['cpus']} CPUs · real twilio SDK → local stand-in · {result['seconds']:.0f} s"
    )
    table = Table(show_header=True, header_style="bold")
    table.add_column("measure")
    table.add_column("result", justify="right")
    table.add_column("target")
    table.add_column("")
    planning = result["planning"]
    table.add_row(
        "planning",
        f"{planning['per_s']:,} subscribers/s",
        f"≥ {targets['planning_per_s']:,}",
        _mark(planning["per_s"] >= targets["planning_per_s"]),
    )
    table.add_row("  CPU per subscriber", _cpu(planning), "", "")
    for mode, run in result.get("planning_returning", {}).items():
        if mode == "seed":
            continue
        table.add_row(
            f"planning returning subscribers, experiment {mode}",
            f"{run['per_s']:,} subscribers/s",
            f"≥ {targets['planning_per_s']:,}",
            _mark(run["per_s"] >= targets["planning_per_s"]),
        )
        table.add_row("  CPU per subscriber", _cpu(run), "", "")
    if "dispatch" in result:
        _sending_rows(result, table)
    console.print(table)


def _cpu(run: dict[str, Any]) -> str:
    """Planner (+ PostgreSQL) CPU per subscriber, and the rate it allows on idle cores."""
    cpu = run["cpu"]
    text = f"{cpu['planner_ms_per_subscriber']:.3f} ms"
    if cpu["postgres_ms_per_subscriber"] is not None:
        text += f" + PostgreSQL {cpu['postgres_ms_per_subscriber']:.3f} ms"
    if run["per_s_idle_cores"]:
        text += f" (idle cores: {run['per_s_idle_cores']:,}/s)"
    return text


def _sending_rows(result: dict[str, Any], table: Table) -> None:
    targets = result["targets"]
    dispatch = result["dispatch"]
    table.add_row(
        "dispatch",
        f"{dispatch['per_s']:,} msg/s",
        f"≥ {targets['dispatch_per_s']:,}",
        _mark(dispatch["per_s"] >= targets["dispatch_per_s"]),
    )
    if "sdk_ceiling" in result:
        ceiling = result["sdk_ceiling"]
        table.add_row(
            "raw twilio SDK ceiling (2 proc × 4 threads, no db)",
            f"{ceiling['per_s']:,} msg/s",
            "",
            "",
        )
        share = result["dispatch_vs_ceiling"]
        table.add_row(
            "dispatch ÷ ceiling",
            f"{share:.0%}",
            f"≥ {targets['dispatch_vs_ceiling']:.0%}",
            _mark(share >= targets["dispatch_vs_ceiling"]),
        )
    if "naive" in result:
        naive = result["naive"]
        table.add_row(
            "naive baseline (task per message, one process per core)",
            f"{naive['per_s']:,} msg/s",
            "",
            "",
        )
        ratio = result["dispatch_vs_naive"]
        table.add_row(
            "dispatch ÷ naive",
            f"{ratio:.1f}×",
            f"≥ {targets['dispatch_vs_naive']:.0f}×",
            _mark(ratio >= targets["dispatch_vs_naive"]),
        )
    latency = result["latency"]
    table.add_row(
        "due → handoff latency",
        f"p50 {latency['p50_s']:.2f} s · p95 {latency['p95_s']:.2f} s · "
        f"p99 {latency['p99_s']:.2f} s",
        f"{latency['messages']:,} due at {latency['rate_per_s']:,}/s, "
        f"tick {latency['tick_seconds']:g} s",
        "",
    )
    hooks = result["webhooks"]
    table.add_row(
        "webhook ingest (signed, persisted)",
        f"{hooks['per_s']:,} callbacks/s",
        f"≥ {targets['webhooks_per_s']:,}",
        _mark(
            hooks["per_s"] >= targets["webhooks_per_s"] and hooks["persisted"] == hooks["callbacks"]
        ),
    )
    rss = dispatch["rss"]
    peak = max(rss["peak_mib_per_child"], default=0.0)
    table.add_row(
        "worker RSS, peak per pool process",
        " / ".join(f"{value:.0f}" for value in rss["peak_mib_per_child"]) + " MiB",
        f"< {targets['worker_rss_mib']} MiB, flat",
        _mark(peak < targets["worker_rss_mib"]),
    )
    table.add_row(
        "  first → last sample",
        " / ".join(
            f"{a:.0f}→{b:.0f}"
            for a, b in zip(rss["first_mib_per_child"], rss["last_mib_per_child"], strict=False)
        )
        + " MiB",
        "",
        "",
    )
    if "import" in result:
        phase = result["import"]
        lines = import_rows_text(result)
        table.add_row(
            f"{lines[0][0]}; validating helpers: {phase['helpers']}",
            lines[0][1],
            f"≥ {targets['import_per_s']:,}",
            _mark(phase["per_s"] >= targets["import_per_s"]),
        )
        for label, value in lines[1:]:
            table.add_row(label, value, "", "")
        table.add_row(
            "  every bad row named, every valid row imported",
            "yes" if phase["check"]["ok"] else "no",
            "yes",
            _mark(phase["check"]["ok"]),
        )
    checks = [dispatch["check"], latency["check"]]
    if "sdk_ceiling" in result:
        checks.append({"duplicates": 0, **result["sdk_ceiling"]["check"]})
    checks += [result["naive"]["check"]] if "naive" in result else []
    table.add_row(
        "sent twice / left unsent",
        f"{sum(c['duplicates'] for c in checks)} / "
        f"{sum(0 if c['ok'] else 1 for c in checks)} phases with leftovers",
        "0 / 0",
        _mark(all(c["ok"] for c in checks)),
    )
