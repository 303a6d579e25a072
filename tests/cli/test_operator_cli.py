"""Operator commands through the real CLI: `steady subscribers import/export/erase`,
`steady send-test` and `steady config check`, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import func, select
from typer.testing import CliRunner

from service.addresses import AddressHasher
from service.cli.main import app
from service.devtools.sandbox.server import SandboxServer
from service.people import do_not_contact, subscriptions
from service.settings import SECRET_FIELDS, Settings
from service.storage.db import session_factory
from service.storage.models import (
    ActivityLog,
    Channel,
    ChannelKind,
    ContactLog,
    DeliveryEvent,
    InboundMessage,
    Message,
    Subscriber,
    Suppression,
)

SECRET = "operator-test-secret-key-0123456789abcdef"
HASHER = AddressHasher(SECRET)
HEADER = "phone,email,timezone,consent_evidence\n"
runner = CliRunner()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No setting leaks in from the environment or a .env file; the secret is ours."""
    for info in Settings.model_fields.values():
        for name in getattr(info.validation_alias, "choices", []):
            monkeypatch.delenv(str(name), raising=False)
    for name in (f"{secret}_FILE" for secret in SECRET_FIELDS.values()):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STEADY_SECRET_KEY", SECRET)
    return monkeypatch


@pytest.fixture
def db(cli_env: pytest.MonkeyPatch, database_url: str) -> str:
    cli_env.setenv("STEADY_DATABASE_URL", database_url)
    return database_url


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args), catch_exceptions=False)


def write_csv(tmp_path: Path, body: str, name: str = "people.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def count(url: str, model: Any, *where: Any) -> int:
    with session_factory(url)() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_import_names_bad_rows_by_line_and_field_and_imports_the_good_ones(
    db: str, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path,
        "(212) 555-0142,,America/Chicago,\n"  # line 2: good, pending
        ",kim@example.com,,signed paper form 2026-01-05 ref 77\n"  # line 3: good, evidence
        "555,,,\n"  # line 4: bad phone
        ",not-an-email,,\n"  # line 5: bad email
        "+12125550143,,Mars/Olympus_Mons,\n"  # line 6: bad timezone
        ",,,\n"  # line 7: empty
        # line 8: good, two channels: two people until one proves both (issue 11)
        "+1 212 555 0144,lee@example.org,Europe/London,\n",
    )

    result = invoke("subscribers", "import", str(path))

    assert result.exit_code == 1, result.output
    stderr = result.stderr
    assert "line 4: phone:" in stderr
    assert "line 5: email:" in stderr
    assert "line 6: timezone:" in stderr
    assert "line 7: row: empty row" in stderr
    for good_line in ("line 2:", "line 3:", "line 8:"):
        assert good_line not in stderr
    assert count(db, Subscriber) == 4
    with session_factory(db)() as session:
        channels = {c.address: c for c in session.scalars(select(Channel))}
        confirms = session.scalars(select(Message).where(Message.kind == "confirm")).all()
        kim = channels["kim@example.com"]
        assert kim.subscriber.next_plan_at is not None
        assert channels["+12125550142"].subscriber.timezone == "America/Chicago"
    assert set(channels) == {"+12125550142", "kim@example.com", "+12125550144", "lee@example.org"}
    pending = [c for c in channels.values() if c.status == "pending"]
    assert len(pending) == 3
    assert all(c.consent_method == "import" for c in pending)
    assert sorted(m.channel_id for m in confirms) == sorted(c.id for c in pending)
    assert kim.status == "active"
    assert kim.consent_method == "import_with_evidence"
    assert kim.consent_evidence is not None
    assert kim.consent_evidence["evidence"] == "signed paper form 2026-01-05 ref 77"
    assert kim.consent_evidence["line"] == 3
    assert count(db, Message, Message.channel_id == kim.id) == 0, "no confirmation with evidence"


def test_import_of_only_good_rows_exits_0_and_counts(db: str, tmp_path: Path) -> None:
    path = write_csv(tmp_path, "+12125550142,,,\n,sam@example.com,America/Denver,\n")
    result = invoke("subscribers", "import", str(path))
    assert result.exit_code == 0, result.output
    assert "2 rows: 2 imported" in result.stdout
    assert count(db, Channel, Channel.status == "pending") == 2


def test_import_refuses_a_file_without_the_header(db: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("+12125550142,,\n", encoding="utf-8")
    result = invoke("subscribers", "import", str(path))
    assert result.exit_code == 2
    assert "header" in result.stderr
    assert count(db, Subscriber) == 0


def test_a_batch_refused_by_the_database_is_redone_row_by_row_naming_failures(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signup takes one of the batch's addresses between the batch's checks and its
    write (a real race, timed by a hook): the database refuses the batch, the rows go
    in one by one, the raced one is left as the signup made it, and a row that fails
    half-way (after its channels are written) leaves nothing behind."""
    from service.people import importer

    real_queue = subscriptions.queue_confirmation
    real_plan = importer._plan

    def failing_queue(session: Any, channel: Channel, now: datetime) -> Message | None:
        # By now the row's subscriber and channels are flushed: the failure is mid-way.
        if channel.address == "boom@example.com":
            raise RuntimeError("disk full")
        return real_queue(session, channel, now)

    def plan_then_race(session: Any, batch: Any, context: Any) -> Any:
        planned = real_plan(session, batch, context)
        with session_factory(db).begin() as other:
            request = subscriptions.SignupRequest(None, "raced@example.com", "UTC", "web_form", {})
            subscriptions.subscribe(other, request, HASHER, datetime.now(UTC))
        return planned

    monkeypatch.setattr(subscriptions, "queue_confirmation", failing_queue)
    monkeypatch.setattr(importer, "_plan", plan_then_race)
    path = write_csv(
        tmp_path,
        "+12125550142,,,\n+12125550143,boom@example.com,,\n,after@example.com,,\n"
        ",raced@example.com,,\n",
    )

    result = invoke("subscribers", "import", str(path))

    assert result.exit_code == 1
    assert "line 3: row: not imported (RuntimeError: disk full)" in result.stderr
    assert "1 already known or suppressed" in result.stdout
    with session_factory(db)() as session:
        channels = {c.address: c.consent_method for c in session.scalars(select(Channel))}
    assert channels == {
        "+12125550142": "import",
        "after@example.com": "import",
        "raced@example.com": "web_form",
    }
    assert count(db, Subscriber) == 3
    assert count(db, Message) == 3


def test_import_never_recontacts_stopped_or_erased_addresses(db: str, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    with session_factory(db).begin() as session:
        subscriptions.subscribe(
            session,
            subscriptions.SignupRequest("+12125550142", None, "UTC", "web_form", {}),
            HASHER,
            now,
        )
        channel = session.scalars(select(Channel)).one()
        subscriptions.stop(session, channel, "stop", HASHER, now)
        do_not_contact.suppress(session, "gone@example.com", "email", "erased", HASHER, now)
    messages_before = count(db, Message)
    path = write_csv(tmp_path, "+12125550142,,,\n,gone@example.com,,form 3\n")

    result = invoke("subscribers", "import", str(path))

    assert result.exit_code == 0, result.output
    assert "0 imported" in result.stdout
    assert "2 already known or suppressed" in result.stdout
    assert count(db, Message) == messages_before, "no new confirmation to a stopped number"
    assert count(db, Channel, Channel.status == "stopped") == 1
    assert count(db, Channel, Channel.address == "gone@example.com") == 0


def test_export_csv_and_json_round_trip(db: str, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "+12125550142,,America/Chicago,\n,ann@example.com,,form 9\n+12125550144,bo@example.org,,\n",
    )
    assert invoke("subscribers", "import", str(path)).exit_code == 0

    exported = invoke("subscribers", "export")
    as_json = invoke("subscribers", "export", "--json")

    assert exported.exit_code == as_json.exit_code == 0
    lines = exported.stdout.splitlines()
    assert lines[0] == "id,phone,email,timezone,status_sms,status_email,created_at"
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    objects = json.loads(as_json.stdout)
    assert len(rows) == len(objects) == count(db, Subscriber) == 4
    assert [r["id"] for r in rows] == [str(o["id"]) for o in objects]
    by_email = {o["email"]: o for o in objects}
    assert by_email["ann@example.com"]["status_email"] == "active"
    assert by_email["ann@example.com"]["status_sms"] is None
    assert by_email["bo@example.org"]["phone"] is None, "a phone beside it is another person"
    assert rows[0]["timezone"] == "America/Chicago"
    assert rows[0]["status_sms"] == "pending"
    assert datetime.fromisoformat(objects[0]["created_at"]).tzinfo is not None


def _person_with_history(url: str, phone: str, email: str) -> int:
    now = datetime.now(UTC)
    with session_factory(url).begin() as session:
        subscriptions.subscribe(
            session,
            subscriptions.SignupRequest(phone, None, "America/New_York", "web_form", {}),
            HASHER,
            now,
        )
        channel = session.scalars(select(Channel).where(Channel.address == phone)).one()
        # The email joins this person: asked for from the phone, confirmed on itself.
        subscriptions.confirm(session, channel, {}, now)
        join = subscriptions.SignupRequest(None, email, "America/New_York", "web_form", {})
        subscriptions.request_join(session, channel, ChannelKind.EMAIL, email, join, HASHER, now)
        joined = session.scalars(select(Channel).where(Channel.address == email)).one()
        subscriptions.confirm(session, joined, {}, now)
        inbound = InboundMessage(
            subscriber_id=channel.subscriber_id, channel_id=channel.id, body="ME", provider_id=phone
        )
        session.add(inbound)
        session.flush()
        session.add(ContactLog(subscriber_id=channel.subscriber_id, initiator="me"))
        session.add(ActivityLog(subscriber_id=channel.subscriber_id, area="fitness"))
        message = session.scalars(select(Message).where(Message.channel_id == channel.id)).one()
        session.add(
            DeliveryEvent(
                message_id=message.id,
                provider="twilio",
                event_key=f"evt-{phone}",
                event_type="delivered",
                payload={"To": phone},
            )
        )
        return channel.subscriber_id


def test_erase_removes_the_person_and_keeps_only_suppression_hashes(db: str) -> None:
    erased = _person_with_history(db, "+12125550142", "pat@example.com")
    kept = _person_with_history(db, "+12125550199", "other@example.com")

    result = invoke("subscribers", "erase", "(212) 555-0142")

    assert result.exit_code == 0, result.output
    assert f"erased subscriber {erased}" in result.stdout
    assert "messages 2" in result.stdout
    assert "channels 2" in result.stdout
    for model in (Channel, Message, InboundMessage, ContactLog, ActivityLog):
        assert count(db, model, model.subscriber_id == erased) == 0
    assert count(db, Subscriber, Subscriber.id == erased) == 0
    assert count(db, DeliveryEvent, DeliveryEvent.event_key == "evt-+12125550142") == 0
    assert count(db, Subscriber, Subscriber.id == kept) == 1
    assert count(db, Channel, Channel.subscriber_id == kept) == 2
    with session_factory(db)() as session:
        hashes = set(session.scalars(select(Suppression.address_hash)))
        assert hashes == {
            HASHER("+12125550142"),
            HASHER("pat@example.com"),
        }
    # Signing up again from an erased address sends nothing: it is on our own list.
    with session_factory(db).begin() as session:
        confirmations = subscriptions.subscribe(
            session,
            subscriptions.SignupRequest("+12125550142", None, "UTC", "web_form", {}),
            HASHER,
            datetime.now(UTC),
        )
        assert confirmations == []
    assert count(db, Channel, Channel.address == "+12125550142") == 0


def test_erase_of_an_unknown_address_exits_1(db: str) -> None:
    result = invoke("subscribers", "erase", "nobody@example.com")
    assert result.exit_code == 1
    assert "no subscriber has the email address" in result.stderr
    assert "nobody@" not in result.stderr, "the address is masked"


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
