"""Operations commands: `steady messages`, `steady archive`, `steady health`.

Registered on the main app in `service.cli.main`. Reads go to the replica
(STEADY_DATABASE_REPLICA_URL) when there is one; output is streamed.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console

from service.cli.common import EXIT_USAGE, errors, parse_time, settings_or_exit, write_json_array

console = Console(soft_wrap=True, highlight=False)

# The largest LIMIT a database takes (a signed 64-bit integer); past it, a usage error.
SQL_INTEGER_MAX = 2**63 - 1
STATUSES = (
    "scheduled",
    "sending",
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "expired",
    "unknown",
    "cancelled",
)
# The plain-text log: column widths, so lines stream without holding the log.
TEXT_COLUMNS = (("id", 8), ("to", 22), ("kind", 10), ("template", 22), ("rule", 22))
TEXT_TAIL = (("status", 11), ("scheduled", 17), ("sent", 16))


def messages(
    to: Annotated[
        str | None, typer.Option("--to", help="A phone number (any format) or an email.")
    ] = None,
    status: Annotated[
        str | None, typer.Option("--status", help=f"Only this status: {', '.join(STATUSES)}.")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only messages created at or after (ISO-8601).")
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, max=SQL_INTEGER_MAX, help="At most N rows.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array.")] = False,
) -> None:
    """The outbound message log, oldest first, streamed (any size, flat memory)."""
    from service.addresses import InvalidAddress, parse_address
    from service.reporting.message_log import LogFilter, iter_message_log
    from service.storage.db import read_session_factory

    settings = settings_or_exit()
    address = None
    if to is not None:
        try:
            _, address = parse_address(to)
        except InvalidAddress as exc:
            errors.print(f"--to: {exc.message}", markup=False)
            raise typer.Exit(EXIT_USAGE) from None
    if status is not None and status not in STATUSES:
        raise typer.BadParameter(f"one of {', '.join(STATUSES)}", param_hint="--status")
    where = LogFilter(
        address=address,
        status=status,
        since=parse_time(since, "--since") if since is not None else None,
        limit=limit,
    )
    sessions = read_session_factory(settings.database_url, settings.database_replica_url)
    rows = iter_message_log(sessions, where)
    out = sys.stdout
    if as_json:
        write_json_array(out, rows)
        return
    out.write(_text_line([name for name, _ in (*TEXT_COLUMNS, *TEXT_TAIL)]))
    for row in rows:
        out.write(
            _text_line(
                [
                    str(row["id"]),
                    row["to"] or "",
                    row["kind"],
                    row["template"],
                    row["rule"],
                    row["status"],
                    (row["scheduled_for"] or "")[:16],
                    (row["sent_at"] or "")[:16],
                ]
            )
        )


def _text_line(cells: list[str]) -> str:
    widths = [width for _, width in (*TEXT_COLUMNS, *TEXT_TAIL)]
    return (
        " ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()
        + "\n"
    )


def archive(
    before: Annotated[
        str | None,
        typer.Option("--before", help="Archive what was created before this time (ISO-8601)."),
    ] = None,
) -> None:
    """Move messages and delivery events older than STEADY_RETENTION_DAYS (or --before)
    to messages_archive / delivery_events_archive; in-flight messages stay."""
    from service.storage.archive import RetentionTooShort
    from service.storage.archive import archive as move
    from service.storage.db import session_factory

    settings = settings_or_exit()
    now = datetime.now(UTC)
    cutoff = (
        parse_time(before, "--before")
        if before is not None
        else now - timedelta(days=settings.retention_days)
    )
    try:
        report = move(
            session_factory(settings.database_url),
            cutoff,
            now,
            on_batch=lambda r: errors.print(
                f"archived {r.messages} messages, {r.delivery_events} delivery events…",
                markup=False,
            ),
        )
    except RetentionTooShort as exc:
        errors.print(f"--before: {exc}", markup=False)
        raise typer.Exit(EXIT_USAGE) from None
    console.print(
        f"archived {report.messages} messages and {report.delivery_events} delivery events "
        f"created before {cutoff.isoformat()} ({report.batches} batches)"
    )


def health(
    role: Annotated[str, typer.Argument(help="worker or beat")],
    max_age: Annotated[
        float, typer.Option(help="Seconds since the last heartbeat still counted as alive.")
    ] = 60.0,
) -> None:
    """Exit 0 if this host's worker or beat is ready and its heartbeat fresh, else 1
    (reads STEADY_STATE_DIR/<role>.ready; for compose and systemd health checks)."""
    from workers.health import ROLES, check

    if role not in ROLES:
        errors.print(f"role must be one of: {', '.join(ROLES)}", markup=False)
        raise typer.Exit(EXIT_USAGE)
    settings = settings_or_exit()
    healthy, why = check(settings.state_dir, role, max_age=max_age)
    (console if healthy else errors).print(why, markup=False)
    raise typer.Exit(0 if healthy else 1)
