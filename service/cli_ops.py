"""Operator commands: `steady subscribers …`, `steady send-test`, `steady config check`.

Registered on the main app in `service.cli`. Each command reads the settings afresh
with `load_settings()` (never the process-wide cached ones) and keeps its logic in
`service.operators` or in the small check functions below.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import typer
from pydantic import SecretStr
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from service.settings import (
    DEVELOPMENT_SECRET_KEY,
    ConfigurationError,
    Settings,
    load_settings,
)

subscribers_app = typer.Typer(help="Bulk import, export and erasure.", no_args_is_help=True)
config_app = typer.Typer(help="Configuration.", no_args_is_help=True)
console = Console(soft_wrap=True, highlight=False)
errors = Console(stderr=True, soft_wrap=True, highlight=False)

EXIT_OK = 0
EXIT_PROBLEM = 1  # some rows bad, an address unknown, a check failed
EXIT_USAGE = 2  # the settings or the arguments cannot be used at all
CHECK_TIMEOUT_SECONDS = 5.0
SEND_TEST_TEMPLATE = "restraint_01"


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigurationError as exc:
        errors.print(str(exc), markup=False)
        raise typer.Exit(EXIT_USAGE) from None


def _sessions(settings: Settings) -> Any:
    from service.db import session_factory

    return session_factory(settings.database_url)


def _parse_address_or_exit(raw: str) -> tuple[str, str]:
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
    from service.operators import ImportFileError, count_data_lines, import_subscribers

    settings = _settings()
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
                secret=settings.secret_key.get_secret_value(),
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
    console.print(
        f"{report.rows} rows: {report.imported} imported ({report.pending} channels pending "
        f"confirmation, {report.active} active with evidence), {report.skipped} already known "
        f"or suppressed, {len(report.errors)} bad"
    )
    if report.errors:
        raise typer.Exit(EXIT_PROBLEM)


@subscribers_app.command("export")
def export_command(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array instead of CSV.")] = False,
) -> None:
    """Write every subscriber to stdout: CSV (default) or a JSON array."""
    from service.operators import EXPORT_COLUMNS, export_rows

    rows = export_rows(_sessions(_settings()))
    out = sys.stdout
    if as_json:
        out.write("[")
        for index, row in enumerate(rows):
            out.write(("," if index else "") + "\n  " + json.dumps(row))
        out.write("\n]\n")
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
    from service.operators import erase_person

    settings = _settings()
    kind, normalised = _parse_address_or_exit(address)
    report = erase_person(
        _sessions(settings),
        kind,
        normalised,
        secret=settings.secret_key.get_secret_value(),
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
    from service.compose import POSTAL_ADDRESS_UNSET, PROGRAM_NAME, sms_context
    from service.content import Content, TemplateError, sample_context
    from service.providers.base import Channel, OutboundMessage, ProviderError, build_providers

    settings = _settings()
    kind, normalised = _parse_address_or_exit(address)
    channel: Channel = "sms" if kind == "sms" else "email"
    context = {
        **sample_context(channel=channel),
        **sms_context(settings, discreet=False, cadence_per_week=settings.default_cadence_per_week),
        "postal_address": settings.postal_address or POSTAL_ADDRESS_UNSET,
    }
    content = Content()
    try:
        if channel == "sms":
            message = OutboundMessage(
                message_id=0, channel="sms", to=normalised, body=content.sms(template, context)
            )
        else:
            email = content.email(template, context)
            message = OutboundMessage(
                message_id=0,
                channel="email",
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

OK, FAIL, SKIP = "✓", "✗", "–"


@dataclass(frozen=True)
class Check:
    name: str
    mark: str
    detail: str


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
    for run in (
        _check_production,
        _check_database,
        _check_redis,
        _check_twilio,
        _check_sendgrid,
        _check_templates,
        _check_crisis_words,
    ):
        try:
            checks.extend(run(settings))
        except Exception as exc:  # a check that crashes is a failed check, not a traceback
            checks.append(Check(run.__name__.removeprefix("_check_"), FAIL, _error(exc)))
    _print_checks(checks)
    _print_settings(settings)
    if any(check.mark == FAIL for check in checks):
        raise typer.Exit(EXIT_PROBLEM)


def _error(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:200]


def _print_checks(checks: list[Check]) -> None:
    table = Table("check", "", "detail", title="steady config check")
    for check in checks:
        table.add_row(check.name, check.mark, check.detail)
    console.print(table)


def _check_production(settings: Settings) -> list[Check]:
    if settings.env != "production":
        return [Check("public url", OK, f"{settings.public_url} (development)")]
    if not settings.public_url.startswith("https://"):
        return [Check("public url", FAIL, "production needs an https:// STEADY_PUBLIC_URL")]
    return [Check("public url", OK, settings.public_url)]


def _check_database(settings: Settings) -> list[Check]:
    from alembic.script import ScriptDirectory
    from sqlalchemy import text

    from service.db import alembic_config, current_revision, get_engine

    with get_engine(settings.database_url).connect() as connection:
        connection.execute(text("SELECT 1"))
    where = mask_url(settings.database_url)
    checks = [Check("database", OK, f"SELECT 1 on {where}")]
    head = ScriptDirectory.from_config(alembic_config(settings.database_url)).get_current_head()
    current = current_revision(settings.database_url)
    if current == head:
        checks.append(Check("migrations", OK, f"at head {head}"))
    else:
        checks.append(
            Check(
                "migrations", FAIL, f"at {current or 'nothing'}, head is {head}: steady db upgrade"
            )
        )
    return checks


def _check_redis(settings: Settings) -> list[Check]:
    import redis

    if not settings.broker_url and not settings.redis_url:
        return [Check("broker", SKIP, "unset: work runs in-process (steady run / steady tick)")]
    checks = []
    urls = {"broker": settings.broker_url, "redis": settings.redis_url_setting}
    for name, url in urls.items():
        if not url:
            continue
        client = redis.Redis.from_url(
            url, socket_timeout=CHECK_TIMEOUT_SECONDS, socket_connect_timeout=CHECK_TIMEOUT_SECONDS
        )
        try:
            client.ping()
            checks.append(Check(name, OK, f"PING {mask_url(url)}"))
        except redis.RedisError as exc:
            checks.append(Check(name, FAIL, f"{mask_url(url)}: {_error(exc)}"))
        finally:
            client.close()
    return checks


def _reach(name: str, url: str, authorised: Callable[[Any], str | None], **request: Any) -> Check:
    """GET `url`; 2xx runs `authorised` (None = fine), 401/403 fail, 404 proves reachability."""
    import httpx

    try:
        response = httpx.get(url, timeout=CHECK_TIMEOUT_SECONDS, **request)
    except httpx.HTTPError as exc:
        return Check(name, FAIL, f"{_origin(url)} unreachable: {_error(exc)}")
    if response.status_code in (401, 403):
        return Check(name, FAIL, f"credentials rejected (HTTP {response.status_code})")
    if response.status_code == 404:
        # A sandbox or test double may not implement the lookup: reachable is all we know.
        return Check(name, OK, f"{_origin(url)} reachable (lookup HTTP 404: key not verified)")
    if response.is_success:
        problem = authorised(response)
        return (
            Check(name, FAIL, problem)
            if problem
            else Check(name, OK, f"authenticated at {_origin(url)}")
        )
    return Check(name, FAIL, f"{_origin(url)} answered HTTP {response.status_code}")


def _check_twilio(settings: Settings) -> list[Check]:
    if not settings.twilio_enabled:
        return [Check("twilio", SKIP, "credentials unset: SMS goes to the outbox")]
    if not (settings.twilio_from_number or settings.twilio_messaging_service_sid):
        return [Check("twilio", FAIL, "set TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID")]
    sid = str(settings.twilio_account_sid)
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
    url = f"{settings.twilio_api_url.rstrip('/')}/2010-04-01/Accounts/{sid}.json"

    def account_active(response: Any) -> str | None:
        status = response.json().get("status", "active")
        return None if status == "active" else f"account {sid} is {status}"

    return [_reach("twilio", url, account_active, auth=(sid, token))]


def _check_sendgrid(settings: Settings) -> list[Check]:
    checks = []
    if settings.sendgrid_webhook_public_key:
        checks.append(_check_public_key(settings.sendgrid_webhook_public_key))
    if not settings.sendgrid_enabled:
        return [
            Check("sendgrid", SKIP, "SENDGRID_API_KEY unset: email goes to the outbox"),
            *checks,
        ]
    if not settings.email_from:
        return [Check("sendgrid", FAIL, "STEADY_EMAIL_FROM must be set"), *checks]
    key = settings.sendgrid_api_key.get_secret_value() if settings.sendgrid_api_key else ""
    url = f"{settings.sendgrid_api_url.rstrip('/')}/v3/scopes"

    def can_send(response: Any) -> str | None:
        scopes = response.json().get("scopes", [])
        return None if "mail.send" in scopes else "the API key lacks the mail.send scope"

    return [_reach("sendgrid", url, can_send, headers={"Authorization": f"Bearer {key}"}), *checks]


def _check_public_key(value: str) -> Check:
    import base64
    import binascii

    try:
        der = base64.b64decode(value, validate=True)
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.serialization import load_der_public_key

        key = load_der_public_key(der)
    except (binascii.Error, ValueError) as exc:
        return Check("sendgrid webhook key", FAIL, f"not a base64 DER public key: {_error(exc)}")
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return Check("sendgrid webhook key", FAIL, "not an elliptic-curve (ECDSA) key")
    return Check("sendgrid webhook key", OK, f"ECDSA {key.curve.name}: unsigned events refused")


def _check_templates(settings: Settings) -> list[Check]:
    from service.catalog import BOTH_CHANNEL_TEMPLATES, SMS_ONLY_TEMPLATES
    from service.content import Content, TemplateError, sample_context

    content = Content()
    failures: list[str] = []
    rendered = 0
    for name in (*BOTH_CHANNEL_TEMPLATES, *SMS_ONLY_TEMPLATES):
        channels = ("sms", "email") if name in BOTH_CHANNEL_TEMPLATES else ("sms",)
        for channel in channels:
            try:
                if channel == "sms":
                    content.sms(name, sample_context(channel="sms"))
                else:
                    content.email(name, sample_context(channel="email"))
                rendered += 1
            except TemplateError as exc:
                failures.append(str(exc))
    if failures:
        return [Check("templates", FAIL, f"{len(failures)} failed, first: {failures[0]}")]
    return [Check("templates", OK, f"{rendered} rendered with sample context")]


def _check_crisis_words(settings: Settings) -> list[Check]:
    path = settings.crisis_words_file
    if path is None:
        return []
    try:
        phrases = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except OSError as exc:
        return [Check("crisis words", FAIL, f"{path}: {exc.strerror}")]
    return [Check("crisis words", OK, f"{len(phrases)} extra phrases from {path}")]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def mask_url(url: str) -> str:
    """`scheme://user:***@host/db`: a URL with any password hidden."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def shown_value(value: Any) -> str:
    """How a setting is printed: secrets only as set/unset, URLs without passwords."""
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        if secret == DEVELOPMENT_SECRET_KEY:
            return "development default"
        return "set" if secret else "unset"
    if value is None:
        return "unset"
    text = str(value)
    return mask_url(text) if "://" in text else text


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
