"""Structured logs: JSON lines, personal data masked, a request id on every web request."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from service.logs import configure_logging, mask_text
from tests.support.world import Harness, make_settings

PHONE = "+12125550142"
EMAIL = "sam.jones@example.com"


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """JSON logs into a buffer the test reads; structlog's defaults come back afterwards."""
    stream = io.StringIO()
    configure_logging(json=True, stream=stream)
    yield stream
    reset_logging()
    structlog.contextvars.clear_contextvars()


def reset_logging() -> None:
    """structlog's defaults back, and our root handler (into a test's buffer) gone."""
    structlog.reset_defaults()
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == "steady"]:
        root.removeHandler(handler)
    logging.lastResort = logging._StderrHandler(logging.WARNING)  # type: ignore[attr-defined]


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_phone_numbers_and_emails_are_masked_in_every_field(log_stream: io.StringIO) -> None:
    log = structlog.get_logger("tests.logs")
    log.info(
        f"texted {PHONE}",
        to=PHONE,
        email=EMAIL,
        local_format="(212) 555-0142",
        nested={"reply_to": EMAIL, "numbers": [PHONE]},
    )

    raw = log_stream.getvalue()
    assert raw.count("\n") == 1, "one JSON line per event"
    for personal in (PHONE, "2125550142", "555-0142", EMAIL, "sam.jones"):
        assert personal not in raw
    [line] = lines(log_stream)
    assert line["level"] == "info"
    assert line["email"].endswith("@example.com"), "the domain stays, for diagnosis"
    assert line["to"].startswith("+12")


def test_exception_text_is_masked_too(log_stream: io.StringIO) -> None:
    log = structlog.get_logger("tests.logs")
    try:
        raise ValueError(f"cannot send to {EMAIL} or {PHONE}")
    except ValueError:
        log.exception("send_crashed")

    [line] = lines(log_stream)
    assert "ValueError" in line["exception"]
    assert EMAIL not in line["exception"]
    assert PHONE not in line["exception"]


@pytest.mark.parametrize(
    "harmless",
    [
        "2026-03-02T17:00:00+00:00",
        "2026-03-02 17:00:00",
        "SM0123456789abcdef0123456789abcdef",
        "9f1c0e6a5b7d4c2e8a3b1d0f6e5c4a39",
        "message 123 of 456",
        "Task steady.plan[ac3547cb-6320-4792-995f-6d7d4d51322a] received",
    ],
)
def test_dates_and_ids_are_not_mistaken_for_phone_numbers(harmless: str) -> None:
    assert mask_text(harmless) == harmless


def test_a_request_id_is_made_when_none_is_given(database_url: str) -> None:
    harness = Harness(make_settings(database_url))
    first = harness.client.get("/healthz").headers["x-request-id"]
    second = harness.client.get("/healthz").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first != second


def test_a_sane_request_id_is_echoed(database_url: str) -> None:
    harness = Harness(make_settings(database_url))
    response = harness.client.get("/healthz", headers={"X-Request-ID": "edge-7f3a-0001"})
    assert response.headers["x-request-id"] == "edge-7f3a-0001"


@pytest.mark.parametrize(
    "unsafe",
    ["x" * 65, "has space", "semi;colon", "line\tbreak", PHONE.removeprefix("+")],
)
def test_an_unsafe_request_id_is_replaced(database_url: str, unsafe: str) -> None:
    harness = Harness(make_settings(database_url))
    response = harness.client.get("/healthz", headers={"X-Request-ID": unsafe})
    assert response.headers["x-request-id"] != unsafe
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


def test_every_log_line_of_a_request_carries_its_id(
    database_url: str, log_stream: io.StringIO
) -> None:
    harness = Harness(make_settings(database_url))
    app: Any = harness.client.app

    @app.get("/_test/sync")
    def sync_route() -> dict[str, str]:
        structlog.get_logger("tests.logs").info("in_sync_route", to=PHONE)
        return {}

    @app.get("/_test/async")
    async def async_route() -> dict[str, str]:
        structlog.get_logger("tests.logs").info("in_async_route")
        return {}

    harness.client.get("/_test/sync", headers={"X-Request-ID": "req-sync-1"})
    generated = harness.client.get("/_test/async").headers["x-request-id"]
    structlog.get_logger("tests.logs").info("after_requests")

    by_event = {line["event"]: line for line in lines(log_stream)}
    assert by_event["in_sync_route"]["request_id"] == "req-sync-1"
    assert PHONE not in json.dumps(by_event["in_sync_route"])
    assert by_event["in_async_route"]["request_id"] == generated
    assert "request_id" not in by_event["after_requests"], "the id ends with its request"


def test_the_twilio_sdk_does_not_log_requests_even_under_celerys_info_root(
    log_stream: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    """Celery's worker sets the root logger to INFO; the SDK's request log (query
    string with the number reconciliation lists) must still stay out."""
    from service.devtools.sandbox.server import SandboxServer
    from service.providers.base import OutboundMessage
    from service.providers.twilio.sms import TwilioSmsProvider

    caplog.set_level(logging.INFO)  # as `celery worker --loglevel=INFO` does to the root
    with SandboxServer() as sandbox:
        provider = TwilioSmsProvider(
            account_sid="AC" + "0" * 32,
            auth_token="token",
            from_number="+15005550006",
            api_url=sandbox.url,
        )
        provider.send(OutboundMessage(message_id=1, channel="sms", to="+12125550199", body="Hi"))
    assert not [r for r in caplog.records if r.name.startswith("twilio")]
    assert "2125550199" not in caplog.text


def test_standard_library_lines_are_json_and_masked_like_structlogs(
    log_stream: io.StringIO,
) -> None:
    """Celery, kombu and uvicorn log through the standard library: same JSON lines."""
    logging.getLogger("celery.worker.strategy").info("Task for %s received", PHONE)
    structlog.get_logger("tests.logs").info("own_event")

    first, second = lines(log_stream)
    assert first["logger"] == "celery.worker.strategy"
    assert first["level"] == "info"
    assert "received" in first["event"]
    assert PHONE not in log_stream.getvalue()
    assert second["event"] == "own_event"
    assert {"timestamp", "level"} <= set(first) & set(second)


def test_the_level_applies_to_both_kinds_of_line_and_announcements_always_print() -> None:
    from service.logs import announce

    stream = io.StringIO()
    configure_logging(json=True, level="warning", stream=stream)
    try:
        structlog.get_logger("tests.logs").info("quiet_structlog")
        logging.getLogger("celery.app.trace").info("quiet stdlib")
        structlog.get_logger("tests.logs").warning("loud_structlog")
        logging.getLogger("celery.app.trace").warning("loud stdlib")
        announce("worker_ready", pid=1)
    finally:
        reset_logging()
    events = [line["event"] for line in lines(stream)]
    assert events == ["loud_structlog", "loud stdlib", "worker_ready"]


def test_configuring_twice_keeps_one_handler_of_ours() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(json=True, stream=first)
    configure_logging(json=True, stream=second)
    try:
        logging.getLogger("kombu").warning("once")
    finally:
        reset_logging()
    assert first.getvalue() == ""
    assert [line["event"] for line in lines(second)] == ["once"]


def test_a_logger_of_its_own_without_handlers_still_writes_json(
    log_stream: io.StringIO,
) -> None:
    """billiard's "multiprocessing" logger does not propagate and has no handler: when a
    pool child dies it would print a bare line into a JSON log."""
    from billiard import util

    util.get_logger()
    util.error("Process %r pid:%r exited with %r", "ForkPoolWorker-2", 4242, "signal 15")
    util.sub_warning("below the fallback's level: not written")
    [line] = lines(log_stream)
    assert line["event"] == "Process 'ForkPoolWorker-2' pid:4242 exited with 'signal 15'"
    assert line["level"] == "error"
    assert line["logger"] == "multiprocessing"


def test_an_unknown_level_is_refused_by_the_settings(database_url: str) -> None:
    from service.settings import ConfigurationError

    assert make_settings(database_url, STEADY_LOG_LEVEL="debug").log_level == "DEBUG"
    with pytest.raises(ConfigurationError, match=r"STEADY_LOG_LEVEL|log_level"):
        make_settings(database_url, STEADY_LOG_LEVEL="chatty")


@pytest.mark.parametrize("address", ["127.0.0.1:6379", "10.20.30.40"])
def test_ip_addresses_are_not_mistaken_for_phone_numbers(address: str) -> None:
    assert mask_text(f"Connected to redis://{address}/0") == f"Connected to redis://{address}/0"
