"""`steady config check`: what it reads, what it refuses, and that it never prints secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.devtools.sandbox.server import SandboxServer
from tests.cli.operator import invoke


def test_config_check_passes_on_a_good_sqlite_config(
    cli_env: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    cli_env.setenv("STEADY_DATABASE_URL", sqlite_url)
    result = invoke("config", "check")
    assert result.exit_code == 0, result.output
    assert "✗" not in result.stdout
    for name in ("database", "migrations", "templates"):
        assert any(name in ln and "✓" in ln for ln in result.stdout.splitlines()), name


def test_config_check_reads_the_safety_lines_file_and_names_a_broken_one(
    cli_env: pytest.MonkeyPatch, sqlite_url: str, tmp_path: Path
) -> None:
    cli_env.setenv("STEADY_DATABASE_URL", sqlite_url)
    example = Path(__file__).resolve().parents[2] / "deploy/safety-lines.example.toml"
    cli_env.setenv("STEADY_SAFETY_LINES_FILE", str(example))
    good = invoke("config", "check")
    assert good.exit_code == 0, good.output
    assert any(
        "safety lines" in ln and "AU, CA, GB, IE, US" in ln for ln in good.stdout.splitlines()
    )

    broken = tmp_path / "lines.toml"
    broken.write_text('[US]\nsuicide = "988"\n', encoding="utf-8")
    cli_env.setenv("STEADY_SAFETY_LINES_FILE", str(broken))
    bad = invoke("config", "check")
    assert bad.exit_code == 1
    assert any("safety lines" in ln and "✗" in ln for ln in bad.stdout.splitlines())
    assert "only crisis and violence" in bad.stdout


def test_config_check_fails_on_an_unreachable_broker(
    cli_env: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    cli_env.setenv("STEADY_DATABASE_URL", sqlite_url)
    cli_env.setenv("STEADY_BROKER_URL", "redis://127.0.0.1:1/0")
    result = invoke("config", "check")
    assert result.exit_code == 1
    assert any("broker" in ln and "✗" in ln for ln in result.stdout.splitlines())


def test_config_check_fails_on_an_unmigrated_database(
    cli_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cli_env.setenv("STEADY_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    result = invoke("config", "check")
    assert result.exit_code == 1
    assert "steady db upgrade" in result.stdout


def test_config_check_never_prints_secrets(cli_env: pytest.MonkeyPatch, sqlite_url: str) -> None:
    secrets = {
        "STEADY_SECRET_KEY": "SECRETKEY-recognisable-0123456789abcdef",
        "TWILIO_AUTH_TOKEN": "TWILIOTOKEN-recognisable-42",
        "SENDGRID_API_KEY": "SG.SENDGRIDKEY-recognisable",
        "STEADY_ADMIN_TOKEN": "ADMINTOKEN-recognisable",
    }
    with SandboxServer(auth_token=secrets["TWILIO_AUTH_TOKEN"]) as sandbox:
        for name, value in secrets.items():
            cli_env.setenv(name, value)
        cli_env.setenv("STEADY_DATABASE_URL", sqlite_url)
        cli_env.setenv("STEADY_BROKER_URL", "redis://:BROKERPASS-recognisable@127.0.0.1:1/0")
        cli_env.setenv("TWILIO_ACCOUNT_SID", "AC" + "1" * 32)
        cli_env.setenv("TWILIO_FROM_NUMBER", "+15005550006")
        cli_env.setenv("STEADY_TWILIO_API_URL", sandbox.url)
        cli_env.setenv("STEADY_EMAIL_FROM", "steady@example.com")
        cli_env.setenv("STEADY_SENDGRID_API_URL", sandbox.url)
        cli_env.setenv("SENDGRID_WEBHOOK_PUBLIC_KEY", sandbox.public_key_b64)
        result = invoke("config", "check")
    assert result.exit_code == 1  # the broker is unreachable
    output = result.stdout + result.stderr
    for value in (*secrets.values(), "BROKERPASS-recognisable"):
        assert value not in output
    lines = output.splitlines()
    assert any("twilio" in ln and "✓" in ln for ln in lines), output
    assert any("sendgrid webhook key" in ln and "✓" in ln for ln in lines), output
    assert any("TWILIO_AUTH_TOKEN" in ln and "set" in ln for ln in lines)


def test_config_check_rejects_invalid_settings(cli_env: pytest.MonkeyPatch) -> None:
    cli_env.setenv("STEADY_DEFAULT_TIMEZONE", "Nowhere/Special")
    result = invoke("config", "check")
    assert result.exit_code == 1
    assert "unknown IANA time zone" in result.stderr
