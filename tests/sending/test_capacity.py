"""`steady capacity`, `config check`, `/metrics` and the admin page against a seeded database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import fmean

import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from service.channels import ChannelKind
from service.cli.main import app
from service.messages.catalog import ACTIVITY_TEMPLATES, PATIENCE_TEMPLATES, RESTRAINT_TEMPLATES
from service.messages.compose import sms_context
from service.messages.content import Content
from service.messages.segments import count_segments
from service.sending.capacity import estimate
from service.settings import SECRET_FIELDS, Settings
from service.storage.db import session_factory
from service.storage.models import Channel, Message, Subscriber
from tests.support.world import Harness, make_settings

ADMIN_TOKEN = "admin-token-for-tests-0123456789abcdef"
NOW = datetime.now(UTC)
runner = CliRunner()


def seed(database_url: str) -> None:
    """300 SMS subscribers (200 at 7 a week, 100 at 14), 40 of them new this week, in two
    zones; 50 SMS signups awaiting YES; 20 by email only; one flagged; 70 replies a week."""
    sessions = session_factory(database_url)
    index = 0

    def person(cadence: int, kind: str, status: str, zone: str, confirmed: datetime) -> Subscriber:
        nonlocal index
        index += 1
        subscriber = Subscriber(timezone=zone, cadence_per_week=cadence, created_at=confirmed)
        address = f"+1202555{index:04d}" if kind == "sms" else f"p{index}@example.org"
        subscriber.channels.append(
            Channel(kind=kind, address=address, status=status, confirmed_at=confirmed)
        )
        return subscriber

    old, recent = NOW - timedelta(days=30), NOW - timedelta(days=2)
    with sessions() as session:
        people = [
            *(person(7, "sms", "active", "America/Chicago", old) for _ in range(160)),
            *(person(7, "sms", "active", "America/New_York", recent) for _ in range(40)),
            *(person(14, "sms", "active", "America/New_York", old) for _ in range(100)),
            *(person(7, "sms", "pending", "America/New_York", old) for _ in range(50)),
            *(person(7, "email", "active", "America/New_York", old) for _ in range(20)),
        ]
        flagged = person(21, "sms", "active", "America/New_York", old)
        flagged.flagged_at = NOW
        session.add_all([*people, flagged])
        session.flush()
        first = people[0]
        rows = [
            Message(
                subscriber_id=first.id,
                channel_id=first.channels[0].id,
                channel=ChannelKind.SMS,
                kind="reply",
                template="reply_help",
                rule="help",
                priority=0,
                status="sent",
                scheduled_for=at,
                created_at=at,
            )
            for at in [NOW - timedelta(days=10)] + [NOW - timedelta(hours=h) for h in range(70)]
        ]
        session.add_all(rows)
        session.commit()


def nudge_mean(settings: Settings) -> float:
    """The reference: every nudge template rendered both ways, segments averaged."""
    content = Content()
    names = [
        "welcome",
        "checkin",
        *RESTRAINT_TEMPLATES,
        *PATIENCE_TEMPLATES,
        *(n for names in ACTIVITY_TEMPLATES.values() for n in names),
    ]
    counts = [
        count_segments(content.sms(name, sms_context(settings, discreet=d, cadence_per_week=7)))
        for d in (False, True)
        for name in names
    ]
    return fmean(counts)


def test_the_estimate_counts_subscribers_by_cadence_and_measures_the_catalogue(
    database_url: str,
) -> None:
    seed(database_url)
    settings = make_settings(
        database_url,
        STEADY_SMS_RATE_PER_SECOND="1",
        STEADY_SMS_SEGMENTS_PER_DAY="2000",
        STEADY_SEND_SPREAD_MINUTES="180",
    )
    with session_factory(database_url)() as session:
        report = estimate(settings, session, NOW, replies=True)
        nudges_only = estimate(settings, session, NOW)

    assert nudges_only["today"]["replies_per_day"] == 0
    assert nudges_only["replies_counted"] is False
    assert report["subscribers"] == {
        "sms_active": 300,
        "sms_pending": 50,
        "sms_new_last_7_days": 40,
        "by_cadence": {"7": 200, "14": 100},
    }
    today = report["today"]
    assert today["nudges_per_day"] == 200 * 1 + 100 * 2
    assert today["replies_per_day"] == 10.0  # 70 in the last 7 days
    mean = report["segments_per_message"]["nudge_mean"]
    assert mean == pytest.approx(nudge_mean(settings), abs=0.001)
    expected = 400 * mean + 10 * report["segments_per_message"]["reply_mean"]
    assert today["segments_per_day"] == pytest.approx(expected, abs=0.1)
    assert report["budget"]["segments_per_day_by_rate"] == 1 * 12 * 3600
    assert report["budget"]["segments_per_day"] == 2000  # the cap is the smaller
    assert today["utilisation"] == pytest.approx(expected / 2000, abs=0.001)
    # Next week: the pending signups and another week like this one.
    ahead = report["next_week"]
    assert ahead["sms_subscribers"] == 300 + 50 + 40
    assert ahead["nudges_per_day"] == pytest.approx(400 / 300 * 390, abs=0.1)
    # The busiest zone (Chicago: 160; New York has 140) spread over 180 minutes.
    peak = report["per_second"]
    assert peak["busiest_zone_subscribers"] == 160
    assert peak["opening_segments_per_second"] == pytest.approx(160 * mean / 10800, abs=0.001)
    assert report["status"] == "ok"


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> None:
    for info in Settings.model_fields.values():
        for name in getattr(info.validation_alias, "choices", []):
            monkeypatch.delenv(str(name), raising=False)
    for name in (f"{secret}_FILE" for secret in SECRET_FIELDS.values()):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STEADY_DATABASE_URL", database_url)
    monkeypatch.setenv("STEADY_SMS_RATE_PER_SECOND", "1")


def planned(database_url: str, *, replies: bool = True) -> tuple[float, float]:
    """Today's and next week's planned segments a day, with no cap set."""
    settings = make_settings(database_url, STEADY_SMS_RATE_PER_SECOND="1")
    with session_factory(database_url)() as session:
        report = estimate(settings, session, NOW, replies=replies)
    return report["today"]["segments_per_day"], report["next_week"]["segments_per_day"]


@pytest.mark.usefixtures("cli_env")
@pytest.mark.parametrize(
    # The cap as a multiple of next week's plan (ok, warn), or of today's (over).
    ("horizon", "factor", "status", "exit_code"),
    [(1, 2.0, "ok", 0), (1, 1 / 0.9, "warn", 0), (0, 0.95, "over", 1)],
)
def test_capacity_exits_non_zero_only_when_the_plan_is_over_budget(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    horizon: int,
    factor: float,
    status: str,
    exit_code: int,
) -> None:
    seed(database_url)
    monkeypatch.setenv(
        "STEADY_SMS_SEGMENTS_PER_DAY", str(int(planned(database_url)[horizon] * factor))
    )
    result = runner.invoke(app, ["capacity", "--json"], catch_exceptions=False)
    report = json.loads(result.stdout)
    assert (report["status"], result.exit_code) == (status, exit_code)
    table = runner.invoke(app, ["capacity"], catch_exceptions=False)
    assert f"status: {status}" in table.stdout
    assert table.exit_code == exit_code


@pytest.mark.usefixtures("cli_env")
def test_config_check_warns_from_80_percent(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(database_url)
    cap = int(planned(database_url, replies=False)[1] / 0.9)
    monkeypatch.setenv("STEADY_SMS_SEGMENTS_PER_DAY", str(cap))
    result = runner.invoke(app, ["config", "check"], catch_exceptions=False)
    [line] = [line for line in result.stdout.splitlines() if "sms budget" in line]
    assert "!" in line
    assert f"of {cap:,} SMS segments a day" in line


def test_metrics_and_the_admin_page_warn_before_the_budget_runs_out(database_url: str) -> None:
    seed(database_url)
    cap = int(planned(database_url, replies=False)[1] / 0.9)
    harness = Harness(
        make_settings(
            database_url,
            STEADY_ADMIN_TOKEN=ADMIN_TOKEN,
            STEADY_SMS_RATE_PER_SECOND="1",
            STEADY_SMS_SEGMENTS_PER_DAY=str(cap),
            STEADY_SEND_SPREAD_MINUTES="180",
        )
    )
    harness.now = NOW
    text = harness.client.get("/metrics").text
    samples = {
        (sample.name, sample.labels.get("horizon")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    with session_factory(database_url)() as session:
        report = estimate(harness.settings, session, NOW)
    for horizon in ("today", "next_week"):
        value = samples[("steady_sms_budget_utilisation", horizon)]
        assert value == report[horizon]["utilisation"]
    assert 0.8 <= samples[("steady_sms_budget_utilisation", "next_week")] <= 1.0
    assert samples[("steady_sms_budget_segments_per_day", None)] == cap
    page = harness.client.get("/admin", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert "SMS budget nearly spent" in page.text
    stats = harness.client.get(
        "/admin/api/stats", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ).json()
    assert stats["sms_budget"]["status"] == "warn"
