"""Readiness and `/metrics`: database figures at scrape time, provider timings per process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from twilio.request_validator import RequestValidator

from service.providers.base import OutboundMessage, ProviderError
from service.reporting import metrics
from service.sending.wake import NullWaker
from service.web.app import create_app
from tests.support.world import PUBLIC_URL, TEST_TWILIO_TOKEN, Harness, make_settings

NOON_NEW_YORK = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
PHONE = "+12125550142"
EMAIL = "sam@example.com"
UNREACHABLE_BROKER = "redis://127.0.0.1:1/0"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(harness: Harness) -> Samples:
    response = harness.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def process_value(name: str, **labels: str) -> float:
    """A sample of this process's own registry (counters are process-wide: compare deltas)."""
    found = metrics.PROCESS_REGISTRY.get_sample_value(name, labels)
    return found or 0.0


def subscribed_by_sms(database_url: str, **overrides: str) -> Harness:
    harness = Harness(make_settings(database_url, **overrides), now=NOON_NEW_YORK)
    assert harness.client.post("/subscribe", json={"phone": PHONE, "consent": True}).status_code
    harness.tick()
    return harness


# --- readiness -------------------------------------------------------------------------


def test_readyz_is_200_when_the_database_answers(database_url: str) -> None:
    harness = Harness(make_settings(database_url))
    response = harness.client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok"}


def test_readyz_is_503_when_the_broker_is_unreachable(database_url: str) -> None:
    settings = make_settings(database_url, STEADY_BROKER_URL=UNREACHABLE_BROKER)
    from fastapi.testclient import TestClient

    client = TestClient(create_app(settings, waker=NullWaker()))
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["broker"] != "ok"
    assert client.get("/healthz").status_code == 200, "liveness does not depend on the broker"


# --- database figures ------------------------------------------------------------------


def test_messages_gauge_counts_by_kind_channel_and_status(database_url: str) -> None:
    harness = subscribed_by_sms(database_url)
    harness.client.post("/subscribe", json={"email": EMAIL, "consent": True})

    samples = scrape(harness)
    assert value(samples, "steady_messages", kind="confirm", channel="sms", status="sent") == 1
    assert (
        value(samples, "steady_messages", kind="confirm", channel="email", status="scheduled") == 1
    )
    assert value(samples, "steady_subscribers", status="pending") == 2
    assert value(samples, "steady_subscribers_flagged") == 0
    assert value(samples, "steady_database_up") == 1

    harness.tick()
    samples = scrape(harness)
    assert value(samples, "steady_messages", kind="confirm", channel="email", status="sent") == 1
    assert (
        value(samples, "steady_messages", kind="confirm", channel="email", status="scheduled")
        is None
    )


def test_delivered_status_callback_moves_the_gauge(database_url: str) -> None:
    harness = subscribed_by_sms(database_url)
    [message_id] = [m.message_id for m in harness.sms.sent]
    path = f"/webhooks/twilio/status?m={message_id}"
    form = {"MessageSid": f"outbox-{message_id}", "MessageStatus": "delivered"}
    signature = RequestValidator(TEST_TWILIO_TOKEN).compute_signature(PUBLIC_URL + path, form)
    response = harness.client.post(path, data=form, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200

    samples = scrape(harness)
    assert value(samples, "steady_messages", kind="confirm", channel="sms", status="delivered") == 1
    assert value(samples, "steady_messages", kind="confirm", channel="sms", status="sent") is None


def test_queue_lag_is_the_age_of_the_oldest_due_message(database_url: str) -> None:
    harness = Harness(make_settings(database_url), now=NOON_NEW_YORK)
    assert value(scrape(harness), "steady_queue_lag_seconds") == 0

    harness.client.post("/subscribe", json={"phone": PHONE, "consent": True})
    harness.now = NOON_NEW_YORK + timedelta(seconds=90)  # nobody ticked yet
    samples = scrape(harness)
    assert value(samples, "steady_queue_lag_seconds") == pytest.approx(90)
    assert value(samples, "steady_queue_due") == 1

    harness.tick()
    samples = scrape(harness)
    assert value(samples, "steady_queue_lag_seconds") == 0
    assert value(samples, "steady_queue_due") == 0


def test_stop_shows_as_an_opt_out_and_a_suppression(database_url: str) -> None:
    harness = subscribed_by_sms(database_url)
    harness.text_in(PHONE, "YES")
    harness.text_in(PHONE, "STOP")

    samples = scrape(harness)
    assert value(samples, "steady_opt_outs", channel="sms", reason="stop") == 1
    assert value(samples, "steady_suppressions", channel="sms", reason="stop") == 1
    assert value(samples, "steady_subscribers", status="stopped") == 1


def test_metrics_carry_no_phone_number_or_email_address(database_url: str) -> None:
    harness = subscribed_by_sms(database_url)
    harness.client.post("/subscribe", json={"email": EMAIL, "consent": True})
    harness.tick()
    harness.text_in(PHONE, "YES")
    harness.text_in(PHONE, "STOP")

    text = harness.client.get("/metrics").text
    assert "steady_messages" in text
    for personal in ("2125550142", "555-0142", EMAIL, "example.com"):
        assert personal not in text


# --- process figures -------------------------------------------------------------------


def test_provider_latency_and_outcomes_are_observed_around_each_send(database_url: str) -> None:
    before_count = process_value(
        "steady_provider_send_seconds_count", provider="outbox", channel="sms"
    )
    before_sent = process_value(
        "steady_provider_sends_total", provider="outbox", channel="sms", outcome="sent"
    )
    harness = subscribed_by_sms(database_url)

    assert len(harness.sms.sent) == 1
    assert (
        process_value("steady_provider_send_seconds_count", provider="outbox", channel="sms")
        == before_count + 1
    )
    assert (
        process_value(
            "steady_provider_sends_total", provider="outbox", channel="sms", outcome="sent"
        )
        == before_sent + 1
    )
    samples = scrape(harness)
    assert (
        value(samples, "steady_provider_send_seconds_count", provider="outbox", channel="sms")
        == before_count + 1
    )
    assert (
        value(
            samples,
            "steady_provider_send_seconds_bucket",
            provider="outbox",
            channel="sms",
            le="+Inf",
        )
        == before_count + 1
    )


class RefusingProvider:
    """A provider whose every send fails permanently (as Twilio 21211 would)."""

    name = "refusing"

    def send(self, message: OutboundMessage) -> str:
        raise ProviderError("invalid number", permanent=True, code="21211")


def test_a_permanent_provider_failure_is_counted_as_permanent(database_url: str) -> None:
    labels = {"provider": "refusing", "channel": "sms", "outcome": "permanent"}
    before = process_value("steady_provider_sends_total", **labels)
    harness = Harness(make_settings(database_url), now=NOON_NEW_YORK)
    harness.runtime.providers["sms"] = RefusingProvider()
    harness.client.post("/subscribe", json={"phone": PHONE, "consent": True})
    harness.tick()

    assert process_value("steady_provider_sends_total", **labels) == before + 1
    samples = scrape(harness)
    assert value(samples, "steady_messages", kind="confirm", channel="sms", status="failed") == 1


def test_record_webhook_counts_by_hook_and_result(database_url: str) -> None:
    harness = Harness(make_settings(database_url))
    labels = {"hook": "twilio_status", "result": "duplicate"}
    before = process_value("steady_webhooks_total", **labels)
    metrics.record_webhook("twilio_status", "duplicate")
    metrics.record_webhook("twilio_status", "duplicate")

    assert value(scrape(harness), "steady_webhooks_total", **labels) == before + 2


def test_webhook_routes_count_rejections_and_replies(database_url: str) -> None:
    harness = Harness(make_settings(database_url))
    rejected = {"hook": "twilio_inbound", "result": "rejected"}
    replied = {"hook": "twilio_inbound", "result": "replied"}
    before_rejected = process_value("steady_webhooks_total", **rejected)
    before_replied = process_value("steady_webhooks_total", **replied)

    unsigned = harness.client.post("/webhooks/twilio/inbound", data={"From": PHONE, "Body": "HELP"})
    assert unsigned.status_code == 403
    assert harness.text_in(PHONE, "HELP").status_code == 200

    assert process_value("steady_webhooks_total", **rejected) == before_rejected + 1
    assert process_value("steady_webhooks_total", **replied) == before_replied + 1


def test_multiprocess_mode_reads_the_shared_directory_and_still_adds_database_figures(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = subscribed_by_sms(database_url)
    shared = tmp_path / "prometheus"  # not tmp_path itself: the SQLite file is a .db too
    shared.mkdir()
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(shared))

    samples = scrape(harness)
    assert value(samples, "steady_messages", kind="confirm", channel="sms", status="sent") == 1
    # This process did not start in multiprocess mode, so it wrote no files there:
    # the in-process registry is not read twice.
    assert not any(name.startswith("steady_provider") for name, _ in samples)
