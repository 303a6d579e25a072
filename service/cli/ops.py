"""Operator commands: `steady subscribers …`, `steady send-test`, `steady config check`.

Registered on the main app in `service.cli.main`. Each command reads the settings afresh
with `load_settings()` (never the process-wide cached ones) and keeps its logic in
`service.people.bulk` or in the small check functions below.
"""

from __future__ import annotations

import csv
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from service.addresses import AddressHasher
from service.channels import ChannelKind
from service.cli.common import EXIT_USAGE, errors, settings_or_exit, write_json_array
from service.cli.config_check import (
    ALL_CHECKS,
    FAIL,
    OK,
    Check,
    error_text,
    shown_value,
)
from service.settings import ConfigurationError, Settings, load_settings

subscribers_app = typer.Typer(help="Bulk import, export and erasure.", no_args_is_help=True)
config_app = typer.Typer(help="Configuration.", no_args_is_help=True)
console = Console(soft_wrap=True, highlight=False)

EXIT_OK = 0
EXIT_PROBLEM = 1  # some rows bad, an address unknown, a check failed
SEND_TEST_TEMPLATE = "restraint_01"


def _sessions(settings: Settings) -> Any:
    from service.storage.db import session_factory

    return session_factory(settings.database_url)


def _parse_address_or_exit(raw: str) -> tuple[ChannelKind, str]:
    from service.addresses import InvalidAddress, parse_address

    try:
        return parse_address(raw)
    except InvalidAddress as exc:
        errors.print(f"{raw!r} is not a phone number or an email: {exc.message}", markup=False)
        raise typer.Exit(EXIT_USAGE) from None


# --- steady subscribers ------------------------------------------------------------


@subscribers_app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="CSV: phone,email,timezone[,consent_evidence]")],
) -> None:
    """Import subscribers from a CSV. Exit 0: all rows imported; 1: some rows were bad.

    Rows without consent_evidence get the usual double opt-in (pending, a
    confirmation goes out); rows with it are active at once, the evidence kept.
    """
    from service.people.import_rows import ImportFileError, count_data_lines
    from service.people.importer import import_subscribers

    settings = settings_or_exit()
    if not file.is_file():
        errors.print(f"no such file: {file}", markup=False)
        raise typer.Exit(EXIT_USAGE)
    total = count_data_lines(str(file))
    progress = Progress(
        TextColumn("importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
    )
    with progress, file.open(encoding="utf-8-sig", newline="") as handle:
        task = progress.add_task("import", total=total)
        try:
            report = import_subscribers(
                _sessions(settings),
                handle,
                hasher=AddressHasher(settings.secret_key),
                default_timezone=settings.default_timezone,
                cadence_per_week=settings.default_cadence_per_week,
                now=datetime.now(UTC),
                source=file.name,
                on_row=lambda line: progress.update(task, completed=min(line - 1, total)),
                on_error=lambda error: progress.console.print(
                    f"{file.name}: {error}", markup=False
                ),
            )
        except ImportFileError as exc:
            errors.print(f"{file.name}: {exc}", markup=False)
            raise typer.Exit(EXIT_USAGE) from None
        except UnicodeDecodeError as exc:
            errors.print(f"{file.name}: not UTF-8 text (byte {exc.start})", markup=False)
            raise typer.Exit(EXIT_USAGE) from None
    if report.imported:
        _wake_planner(settings)
    console.print(
        f"{report.rows} rows: {report.imported} imported ({report.pending} channels pending "
        f"confirmation, {report.active} active with evidence), {report.skipped} already known "
        f"or suppressed, {len(report.errors)} bad"
    )
    if report.errors:
        raise typer.Exit(EXIT_PROBLEM)


def _wake_planner(settings: Settings) -> None:
    """Imported people are planned (and their confirmations sent) now, not at the next tick."""
    if not settings.broker_url:
        return  # no workers to wake: `steady run` / `steady tick` pick them up
    from service.sending.wake import CeleryWaker

    try:
        CeleryWaker(settings.broker_url).wake_planner(then_dispatch=True)
    except Exception as exc:  # the import stands; the next tick plans them
        errors.print(f"could not wake the planner ({type(exc).__name__}); beat will", markup=False)


@subscribers_app.command("export")
def export_command(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array instead of CSV.")] = False,
) -> None:
    """Write every subscriber to stdout: CSV (default) or a JSON array."""
    from service.people.bulk import EXPORT_COLUMNS, export_rows
    from service.storage.db import read_session_factory

    settings = settings_or_exit()
    rows = export_rows(read_session_factory(settings.database_url, settings.database_replica_url))
    out = sys.stdout
    if as_json:
        write_json_array(out, rows)
        return
    writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)


@subscribers_app.command("erase")
def erase_command(
    address: Annotated[str, typer.Argument(help="A phone number (any format) or an email.")],
) -> None:
    """Erase the person an address belongs to (every channel); keep hashed suppressions."""
    from service.addresses import mask
    from service.people.bulk import erase_person

    settings = settings_or_exit()
    kind, normalised = _parse_address_or_exit(address)
    report = erase_person(
        _sessions(settings),
        kind,
        normalised,
        hasher=AddressHasher(settings.secret_key),
        now=datetime.now(UTC),
    )
    if report is None:
        errors.print(f"no subscriber has the {kind} address {mask(normalised)}", markup=False)
        raise typer.Exit(EXIT_PROBLEM)
    removed = ", ".join(f"{name} {count}" for name, count in report.removed.items())
    console.print(f"erased subscriber {report.subscriber_id}: removed {removed}")
    console.print(f"kept {report.suppressed} hashed suppression entries (no address stored)")


# --- steady send-test ----------------------------------------------------------------


def send_test(
    address: Annotated[str, typer.Argument(help="A phone number (any format) or an email.")],
    template: Annotated[str, typer.Option(help="Template to send.")] = SEND_TEST_TEMPLATE,
) -> None:
    """Send one sample nudge through the configured provider; print its provider id."""
    from service.messages.compose import POSTAL_ADDRESS_UNSET, PROGRAM_NAME, sms_context
    from service.messages.content import Content, TemplateError, sample_context
    from service.providers.base import OutboundMessage, ProviderError
    from service.providers.registry import build_providers

    settings = settings_or_exit()
    channel, normalised = _parse_address_or_exit(address)
    context = {
        **sample_context(channel=channel),
        **sms_context(settings, discreet=False, cadence_per_week=settings.default_cadence_per_week),
        "postal_address": settings.postal_address or POSTAL_ADDRESS_UNSET,
    }
    content = Content()
    try:
        if channel == ChannelKind.SMS:
            message = OutboundMessage(
                message_id=0, channel=channel, to=normalised, body=content.sms(template, context)
            )
        else:
            email = content.email(template, context)
            message = OutboundMessage(
                message_id=0,
                channel=channel,
                to=normalised,
                body=email.text,
                subject=email.subject,
                html=email.html,
                unsubscribe_url=context["unsubscribe_url"],
                sender_name=PROGRAM_NAME,
            )
        provider = build_providers(settings)[channel]
        provider_id = provider.send(message)
    except TemplateError as exc:
        errors.print(str(exc), markup=False)
        raise typer.Exit(EXIT_USAGE) from None
    except (ProviderError, ValueError) as exc:
        errors.print(f"{channel} send failed: {exc!r}", markup=False)
        raise typer.Exit(EXIT_PROBLEM) from None
    console.print(f"sent {channel} {template} via {provider.name}: {provider_id}")


# --- steady config check -------------------------------------------------------------


@config_app.command("check")
def config_check() -> None:
    """Validate the settings and reach each dependency; exit 1 on any problem."""
    checks: list[Check] = []
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        checks.append(Check("settings", FAIL, "invalid: see below"))
        _print_checks(checks)
        errors.print(str(exc), markup=False)
        raise typer.Exit(EXIT_PROBLEM) from None
    checks.append(Check("settings", OK, f"valid ({settings.env})"))
    for run in ALL_CHECKS:
        try:
            checks.extend(run(settings))
        except Exception as exc:  # a check that crashes is a failed check, not a traceback
            checks.append(Check(run.__name__.removeprefix("_check_"), FAIL, error_text(exc)))
    _print_checks(checks)
    _print_settings(settings)
    if any(check.mark == FAIL for check in checks):
        raise typer.Exit(EXIT_PROBLEM)


def _print_checks(checks: list[Check]) -> None:
    table = Table("check", "", "detail", title="steady config check")
    for check in checks:
        table.add_row(check.name, check.mark, check.detail)
    console.print(table)


def _print_settings(settings: Settings) -> None:
    table = Table("setting", "value", title="settings (secrets masked)")
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        env_name = alias.choices[0] if alias is not None and hasattr(alias, "choices") else name
        value = getattr(settings, name)
        if env_name == "SENDGRID_WEBHOOK_PUBLIC_KEY" and value:
            value = f"{value[:12]}…"
        table.add_row(str(env_name), shown_value(value))
    console.print(table)
