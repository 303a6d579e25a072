"""All of Steady's configuration, read once from the environment (INTERFACE.md §1).

One pydantic-settings class. Names are the environment variables themselves, so
`TWILIO_AUTH_TOKEN` and `STEADY_PUBLIC_URL` read as the operator wrote them. Every
secret may also come from a file named by `<NAME>_FILE` (Docker and systemd
credentials), and production refuses to start on a missing or placeholder secret.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEVELOPMENT_SECRET_KEY = "steady-development-secret-key-do-not-use-in-production"  # noqa: S105 - the placeholder production refuses
PLACEHOLDER_SECRETS = frozenset(
    {DEVELOPMENT_SECRET_KEY, "", "changeme", "change-me", "secret", "please-change-me"}
)
# Secrets by field and environment name; each may also come from `<NAME>_FILE`.
SECRET_FIELDS = {
    "secret_key": "STEADY_SECRET_KEY",
    "admin_token": "STEADY_ADMIN_TOKEN",
    "twilio_auth_token": "TWILIO_AUTH_TOKEN",
    "sendgrid_api_key": "SENDGRID_API_KEY",
}


def _env(name: str) -> Any:
    """Bind a field to exactly one environment variable name."""
    return AliasChoices(name)


class ConfigurationError(RuntimeError):
    """The settings cannot run Steady; the message says which and why."""


class Settings(BaseSettings):
    """Steady's settings. Field names are Pythonic; aliases are the env names."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        case_sensitive=True,
    )

    database_url: str = Field("sqlite:///./steady.db", validation_alias=_env("STEADY_DATABASE_URL"))
    # Reports, /metrics, exports and evaluation read here (storage.db.read_sessions).
    database_replica_url: str | None = Field(
        None, validation_alias=_env("STEADY_DATABASE_REPLICA_URL")
    )
    broker_url: str | None = Field(None, validation_alias=_env("STEADY_BROKER_URL"))
    redis_url_setting: str | None = Field(None, validation_alias=_env("STEADY_REDIS_URL"))
    public_url: str = Field("http://127.0.0.1:8000", validation_alias=_env("STEADY_PUBLIC_URL"))
    secret_key: SecretStr = Field(
        SecretStr(DEVELOPMENT_SECRET_KEY), validation_alias=_env("STEADY_SECRET_KEY")
    )
    admin_token: SecretStr | None = Field(None, validation_alias=_env("STEADY_ADMIN_TOKEN"))
    env: Literal["development", "production"] = Field(
        "development", validation_alias=_env("STEADY_ENV")
    )

    twilio_account_sid: str | None = Field(None, validation_alias=_env("TWILIO_ACCOUNT_SID"))
    twilio_auth_token: SecretStr | None = Field(None, validation_alias=_env("TWILIO_AUTH_TOKEN"))
    twilio_from_number: str | None = Field(None, validation_alias=_env("TWILIO_FROM_NUMBER"))
    twilio_messaging_service_sid: str | None = Field(
        None, validation_alias=_env("TWILIO_MESSAGING_SERVICE_SID")
    )
    twilio_api_url: str = Field(
        "https://api.twilio.com", validation_alias=_env("STEADY_TWILIO_API_URL")
    )

    sendgrid_api_key: SecretStr | None = Field(None, validation_alias=_env("SENDGRID_API_KEY"))
    email_from: str | None = Field(None, validation_alias=_env("STEADY_EMAIL_FROM"))
    sendgrid_api_url: str = Field(
        "https://api.sendgrid.com", validation_alias=_env("STEADY_SENDGRID_API_URL")
    )
    sendgrid_webhook_public_key: str | None = Field(
        None, validation_alias=_env("SENDGRID_WEBHOOK_PUBLIC_KEY")
    )

    postal_address: str | None = Field(None, validation_alias=_env("STEADY_POSTAL_ADDRESS"))
    default_timezone: str = Field(
        "America/New_York", validation_alias=_env("STEADY_DEFAULT_TIMEZONE")
    )
    support_contact: str | None = Field(None, validation_alias=_env("STEADY_SUPPORT_CONTACT"))
    safety_line: str | None = Field(None, validation_alias=_env("STEADY_SAFETY_LINE"))
    crisis_words_file: Path | None = Field(None, validation_alias=_env("STEADY_CRISIS_WORDS_FILE"))
    safety_lines_file: Path | None = Field(None, validation_alias=_env("STEADY_SAFETY_LINES_FILE"))

    # Pacing v1 defaults (PRODUCT.md); each is a setting.
    default_cadence_per_week: int = Field(
        7, ge=3, le=21, validation_alias=_env("STEADY_DEFAULT_CADENCE_PER_WEEK")
    )
    window_start_hour: int = Field(
        8, ge=0, le=23, validation_alias=_env("STEADY_WINDOW_START_HOUR")
    )
    window_end_hour: int = Field(20, ge=1, le=24, validation_alias=_env("STEADY_WINDOW_END_HOUR"))
    max_sms_per_24h: int = Field(3, ge=1, validation_alias=_env("STEADY_MAX_SMS_PER_24H"))
    min_spacing_minutes: int = Field(180, ge=0, validation_alias=_env("STEADY_MIN_SPACING_MINUTES"))
    expiry_grace_minutes: int = Field(
        120, ge=1, validation_alias=_env("STEADY_EXPIRY_GRACE_MINUTES")
    )
    # A window's nudges are spread over up to this much of it, each person at a
    # time of their own, instead of all at its opening (service/pacing/spread.py).
    send_spread_minutes: int = Field(180, ge=0, validation_alias=_env("STEADY_SEND_SPREAD_MINUTES"))
    # Learning what helps (PRODUCT.md): micro-randomised nudges on a grid of decision
    # points, and the optional daily question that measures the outcome for everyone.
    experiment: Literal["off", "on"] = Field("off", validation_alias=_env("STEADY_EXPERIMENT"))
    daily_survey: Literal["off", "on"] = Field("off", validation_alias=_env("STEADY_DAILY_SURVEY"))

    # Work sizes and timings.
    planner_batch_size: int = Field(1000, ge=1, validation_alias=_env("STEADY_PLANNER_BATCH_SIZE"))
    dispatch_batch_size: int = Field(200, ge=1, validation_alias=_env("STEADY_DISPATCH_BATCH_SIZE"))
    send_lease_seconds: int = Field(300, ge=5, validation_alias=_env("STEADY_SEND_LEASE_SECONDS"))
    tick_seconds: float = Field(5.0, gt=0, validation_alias=_env("STEADY_TICK_SECONDS"))
    provider_timeout_seconds: float = Field(
        10.0, gt=0, validation_alias=_env("STEADY_PROVIDER_TIMEOUT_SECONDS")
    )
    # An `unknown` message (no answer, or a worker died mid-send) is looked up at the
    # provider once it has been unknown this long (service/sending/reconcile.py).
    reconcile_after_seconds: float = Field(
        60.0, ge=0, validation_alias=_env("STEADY_RECONCILE_AFTER_SECONDS")
    )
    # Provider rate limits per sender (issue 5), shared by every worker through
    # Redis; 0 = no limit. The outbox is never limited. A US long code (10DLC)
    # takes about 1 SMS a second, a short code about 100; a Messaging Service
    # with a pool of numbers, the pool's total. SendGrid has no per-sender send
    # rate (its limit is the plan's volume), so email is unlimited by default.
    sms_rate_per_second: float = Field(
        1.0, ge=0, validation_alias=_env("STEADY_SMS_RATE_PER_SECOND")
    )
    email_rate_per_second: float = Field(
        0.0, ge=0, validation_alias=_env("STEADY_EMAIL_RATE_PER_SECOND")
    )
    # Segments one SMS sender may send in any 24 hours (a 10DLC brand's T-Mobile
    # cap, issue 13; service/sending/budget.py); 0 = none. The rate above counts
    # segments too. docs/operators.md has the figures per sender type.
    sms_segments_per_day: int = Field(0, ge=0, validation_alias=_env("STEADY_SMS_SEGMENTS_PER_DAY"))

    # Abuse defences of the public signup (issue 11, PRODUCT.md "Abuse").
    sms_countries: str = Field("US,CA", validation_alias=_env("STEADY_SMS_COUNTRIES"))
    signups_per_client_per_hour: int = Field(
        10, ge=1, validation_alias=_env("STEADY_SIGNUPS_PER_CLIENT_PER_HOUR")
    )
    signups_per_prefix_per_hour: int = Field(
        20, ge=1, validation_alias=_env("STEADY_SIGNUPS_PER_PREFIX_PER_HOUR")
    )
    confirmations_per_day: int = Field(
        500, ge=0, validation_alias=_env("STEADY_CONFIRMATIONS_PER_DAY")
    )
    # Operations (issue 13): log level of every process, local state (beat's schedule,
    # readiness files), and how long sent messages stay in the live tables.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", validation_alias=_env("STEADY_LOG_LEVEL")
    )
    state_dir: Path = Field(Path("var"), validation_alias=_env("STEADY_STATE_DIR"))
    retention_days: int = Field(180, ge=1, validation_alias=_env("STEADY_RETENTION_DAYS"))

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any) -> Any:
        """Fill each secret from `<NAME>_FILE` when the variable itself is unset."""
        if not isinstance(data, dict):
            return data
        for field, name in SECRET_FIELDS.items():
            file_var = f"{name}_FILE"
            if data.get(name) or data.get(field):
                continue
            path = data.get(file_var) or os.environ.get(file_var)
            if path:
                try:
                    data[name] = Path(path).read_text(encoding="utf-8").strip()
                except OSError as exc:
                    raise ValueError(f"{file_var}: cannot read {path}: {exc.strerror}") from exc
        return data

    @field_validator("default_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        # OSError: a name too long for the file system (zoneinfo opens it as a path).
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @field_validator("database_url", "database_replica_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        # Refused here, every command says so in one line instead of a traceback.
        if value is not None:
            try:
                make_url(value)
            except ArgumentError as exc:
                raise ValueError("not a SQLAlchemy database URL") from exc
        return value

    @field_validator("sms_countries")
    @classmethod
    def _country_codes(cls, value: str) -> str:
        codes = [code.strip().upper() for code in value.split(",") if code.strip()]
        bad = [code for code in codes if len(code) != 2 or not code.isascii() or not code.isalpha()]
        if bad:
            raise ValueError(f"not ISO 3166 alpha-2 country codes: {', '.join(bad)}")
        return ",".join(codes)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("public_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _production_guards(self) -> Settings:
        if self.window_end_hour <= self.window_start_hour:
            raise ValueError("STEADY_WINDOW_END_HOUR must be after STEADY_WINDOW_START_HOUR")
        if self.env != "production":
            return self
        problems = []
        if self.secret_key.get_secret_value() in PLACEHOLDER_SECRETS:
            problems.append("STEADY_SECRET_KEY is unset or a placeholder")
        elif len(self.secret_key.get_secret_value()) < 32:
            problems.append("STEADY_SECRET_KEY must be at least 32 characters")
        if not self.postal_address:
            problems.append("STEADY_POSTAL_ADDRESS is required (CAN-SPAM: every email names it)")
        if (
            self.admin_token is not None
            and self.admin_token.get_secret_value() in PLACEHOLDER_SECRETS
        ):
            problems.append("STEADY_ADMIN_TOKEN is a placeholder")
        if problems:
            raise ValueError("refusing to run in production: " + "; ".join(problems))
        return self

    @property
    def redis_url(self) -> str | None:
        """Redis for locks and rate limits: `STEADY_REDIS_URL`, else the broker."""
        return self.redis_url_setting or self.broker_url

    @property
    def sms_country_codes(self) -> frozenset[str]:
        """The countries whose mobile numbers may subscribe by SMS (`STEADY_SMS_COUNTRIES`)."""
        return frozenset(code for code in self.sms_countries.split(",") if code)

    @property
    def twilio_enabled(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token)

    @property
    def sendgrid_enabled(self) -> bool:
        return self.sendgrid_api_key is not None and bool(self.sendgrid_api_key.get_secret_value())


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning validation errors into one readable message."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "settings"
            lines.append(f"{where}: {error['msg']}")
        raise ConfigurationError("invalid settings:\n  " + "\n  ".join(lines)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
