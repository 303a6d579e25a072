"""`steady config check`: each check reaches one dependency and says what it found.

Secrets never appear in what a check reports: URLs are shown with passwords
masked, and settings only as set/unset.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr

from service.settings import (
    DEVELOPMENT_SECRET_KEY,
    Settings,
)

CHECK_TIMEOUT_SECONDS = 5.0


OK, FAIL, SKIP = "✓", "✗", "–"
WARN = "!"  # works, but needs an operator's attention soon (does not fail the check)


@dataclass(frozen=True)
class Check:
    name: str
    mark: str
    detail: str


def error_text(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:200]


def _check_production(settings: Settings) -> list[Check]:
    if settings.env != "production":
        return [Check("public url", OK, f"{settings.public_url} (development)")]
    if not settings.public_url.startswith("https://"):
        return [Check("public url", FAIL, "production needs an https:// STEADY_PUBLIC_URL")]
    return [Check("public url", OK, settings.public_url)]


def _check_database(settings: Settings) -> list[Check]:
    from alembic.script import ScriptDirectory
    from sqlalchemy import text

    from service.storage.db import alembic_config, current_revision, get_engine

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

    from service.storage.redis_url import redis_client

    if not settings.broker_url and not settings.redis_url:
        return [Check("broker", SKIP, "unset: work runs in-process (steady run / steady tick)")]
    checks = []
    urls = {"broker": settings.broker_url, "redis": settings.redis_url_setting}
    for name, url in urls.items():
        if not url:
            continue
        client = redis_client(
            url, socket_timeout=CHECK_TIMEOUT_SECONDS, socket_connect_timeout=CHECK_TIMEOUT_SECONDS
        )
        try:
            client.ping()
            checks.append(Check(name, OK, f"PING {mask_url(url)}"))
        except redis.RedisError as exc:
            checks.append(Check(name, FAIL, f"{mask_url(url)}: {error_text(exc)}"))
        finally:
            client.close()
    return checks


def _reach(name: str, url: str, authorised: Callable[[Any], str | None], **request: Any) -> Check:
    """GET `url`; 2xx runs `authorised` (None = fine), 401/403 fail, 404 proves reachability."""
    import httpx

    try:
        response = httpx.get(url, timeout=CHECK_TIMEOUT_SECONDS, **request)
    except httpx.HTTPError as exc:
        return Check(name, FAIL, f"{_origin(url)} unreachable: {error_text(exc)}")
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
        return Check(
            "sendgrid webhook key", FAIL, f"not a base64 DER public key: {error_text(exc)}"
        )
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return Check("sendgrid webhook key", FAIL, "not an elliptic-curve (ECDSA) key")
    return Check("sendgrid webhook key", OK, f"ECDSA {key.curve.name}: unsigned events refused")


def _check_templates(settings: Settings) -> list[Check]:
    from service.messages.catalog import BOTH_CHANNEL_TEMPLATES, SMS_ONLY_TEMPLATES
    from service.messages.content import Content, TemplateError, sample_context

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


def _check_safety_lines(settings: Settings) -> list[Check]:
    from service.messages.safety_lines import SafetyLinesError, read_lines_file

    path = settings.safety_lines_file
    if path is None:
        fallback = "the fallback line only" if settings.safety_line else "none set"
        return [Check("safety lines", SKIP, f"STEADY_SAFETY_LINES_FILE unset: {fallback}")]
    try:
        countries = read_lines_file(path)
    except SafetyLinesError as exc:
        return [Check("safety lines", FAIL, str(exc))]
    return [Check("safety lines", OK, f"{', '.join(sorted(countries)) or 'no'} countries")]


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


def _check_budget(settings: Settings) -> list[Check]:
    """The SMS sender's budget against the plan (`steady capacity`): warn from 80 %."""
    from datetime import UTC, datetime

    from sqlalchemy.exc import SQLAlchemyError

    from service.sending.capacity import budget_summary, estimate
    from service.storage.db import read_session_factory

    sessions = read_session_factory(settings.database_url, settings.database_replica_url)
    try:
        with sessions() as session:
            report = estimate(settings, session, datetime.now(UTC))
    except SQLAlchemyError:
        return [Check("sms budget", SKIP, "the database cannot be read (see above)")]
    mark = {"ok": OK, "warn": WARN, "over": FAIL}[report["status"]]
    return [Check("sms budget", mark, budget_summary(report) + "; see `steady capacity`")]


# In the order `steady config check` prints them.
ALL_CHECKS: tuple[Callable[[Settings], list[Check]], ...] = (
    _check_production,
    _check_database,
    _check_redis,
    _check_twilio,
    _check_sendgrid,
    _check_templates,
    _check_crisis_words,
    _check_safety_lines,
    _check_budget,
)
