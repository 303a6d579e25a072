"""`steady send-test` through the outbox or Twilio, and `steady tick --dry-run`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from service.devtools.sandbox.server import SandboxServer
from service.storage.models import Message
from tests.cli.operator import count, invoke, write_csv


@pytest.mark.parametrize(
    ("address", "channel"), [("212-555-0142", "sms"), ("a@example.com", "email")]
)
def test_send_test_through_the_outbox_prints_an_outbox_id(
    cli_env: pytest.MonkeyPatch, sqlite_url: str, address: str, channel: str
) -> None:
    cli_env.setenv("STEADY_DATABASE_URL", sqlite_url)
    result = invoke("send-test", address)
    assert result.exit_code == 0, result.output
    assert f"sent {channel} restraint_01 via outbox: outbox-0" in result.stdout
    assert "[outbox]" in result.stdout


def test_send_test_goes_through_twilio_when_configured(
    cli_env: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    with SandboxServer() as sandbox:
        cli_env.setenv("STEADY_DATABASE_URL", sqlite_url)
        cli_env.setenv("TWILIO_ACCOUNT_SID", "AC" + "2" * 32)
        cli_env.setenv("TWILIO_AUTH_TOKEN", sandbox.auth_token)
        cli_env.setenv("TWILIO_FROM_NUMBER", "+15005550006")
        cli_env.setenv("STEADY_TWILIO_API_URL", sandbox.url)
        result = invoke("send-test", "+1 212 555 0142")
        sent = sandbox.messages("twilio")
    assert result.exit_code == 0, result.output
    assert [m["to"] for m in sent] == ["+12125550142"]
    assert f"via twilio: {sent[0]['id']}" in result.stdout


def test_tick_dry_run_lists_the_rows_already_due_and_sends_nothing(db: str, tmp_path: Path) -> None:
    """An import queues each confirmation due at once: a dry run names it and leaves it."""
    invoke("subscribers", "import", str(write_csv(tmp_path, "+12125550142,,America/New_York,\n")))
    scheduled = (Message.status == "scheduled", Message.kind == "confirm")
    assert count(db, Message, *scheduled) == 1

    def tick(*args: str) -> str:
        # A real process: `tick` sets up logging for its process (tests/cli/test_cli_acceptance.py).
        done = subprocess.run(
            [sys.executable, "-c", "from service.cli.main import main; main()", "tick", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    [line] = [line for line in tick("--dry-run").splitlines() if line.startswith("would send")]
    assert " sms confirm confirm " in line
    assert count(db, Message, *scheduled) == 1, "a dry run sends nothing"

    assert "would send" not in tick()
    assert count(db, Message, *scheduled) == 0
