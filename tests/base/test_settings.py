"""Settings: INTERFACE.md §1 names and defaults, secret files, production guards."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.settings import DEVELOPMENT_SECRET_KEY, ConfigurationError, load_settings


def settings(**values: str) -> object:
    return load_settings(_env_file=None, **values)


def test_defaults_are_the_interface_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STEADY_DATABASE_URL", "STEADY_PUBLIC_URL", "STEADY_BROKER_URL", "STEADY_ENV"):
        monkeypatch.delenv(name, raising=False)
    loaded = load_settings(_env_file=None)
    assert loaded.database_url == "sqlite:///./steady.db"
    assert loaded.broker_url is None
    assert loaded.redis_url is None
    assert loaded.public_url == "http://127.0.0.1:8000"
    assert loaded.env == "development"
    assert loaded.default_timezone == "America/New_York"
    assert loaded.twilio_api_url == "https://api.twilio.com"
    assert loaded.sendgrid_api_url == "https://api.sendgrid.com"
    assert not loaded.twilio_enabled
    assert not loaded.sendgrid_enabled


def test_environment_names_are_read_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEADY_BROKER_URL", "redis://127.0.0.1:6379/3")
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC123")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "token")
    monkeypatch.setenv("STEADY_PUBLIC_URL", "https://steady.example.org/")
    loaded = load_settings(_env_file=None)
    assert loaded.redis_url == "redis://127.0.0.1:6379/3", "the Redis URL defaults to the broker"
    assert loaded.twilio_enabled
    assert loaded.public_url == "https://steady.example.org"


def test_dotenv_file_in_working_directory_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STEADY_SUPPORT_CONTACT", raising=False)
    (tmp_path / ".env").write_text("STEADY_SUPPORT_CONTACT=help@example.org\n")
    assert load_settings().support_contact == "help@example.org"


def test_production_refuses_the_development_secret() -> None:
    with pytest.raises(ConfigurationError, match="STEADY_SECRET_KEY"):
        settings(STEADY_ENV="production", STEADY_POSTAL_ADDRESS="1 Main St")
    with pytest.raises(ConfigurationError, match="STEADY_SECRET_KEY"):
        settings(
            STEADY_ENV="production",
            STEADY_POSTAL_ADDRESS="1 Main St",
            STEADY_SECRET_KEY=DEVELOPMENT_SECRET_KEY,
        )


def test_production_requires_a_postal_address() -> None:
    with pytest.raises(ConfigurationError, match="STEADY_POSTAL_ADDRESS"):
        settings(STEADY_ENV="production", STEADY_SECRET_KEY="x" * 40)


def test_production_accepts_real_values() -> None:
    loaded = settings(
        STEADY_ENV="production", STEADY_SECRET_KEY="x" * 40, STEADY_POSTAL_ADDRESS="1 Main St"
    )
    assert loaded.env == "production"


def test_secret_may_come_from_a_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("s" * 48 + "\n")
    loaded = settings(
        STEADY_ENV="production",
        STEADY_SECRET_KEY_FILE=str(secret_file),
        STEADY_POSTAL_ADDRESS="1 Main St",
    )
    assert loaded.secret_key.get_secret_value() == "s" * 48


def test_unreadable_secret_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="TWILIO_AUTH_TOKEN_FILE"):
        settings(TWILIO_AUTH_TOKEN_FILE=str(tmp_path / "missing"))


def test_unknown_timezone_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="time zone"):
        settings(STEADY_DEFAULT_TIMEZONE="Mars/Olympus")


def test_secrets_do_not_show_in_repr() -> None:
    loaded = settings(
        STEADY_SECRET_KEY="very-secret-value-0123456789", TWILIO_AUTH_TOKEN="tok-secret"
    )
    assert "very-secret-value" not in repr(loaded)
    assert "tok-secret" not in repr(loaded)
