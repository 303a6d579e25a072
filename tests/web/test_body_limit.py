"""Request bodies are bounded by the app (service/web/body_limit.py), on every route."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.web.body_limit import DEFAULT_LIMIT, LIMITS_BY_PATH
from tests.support.world import PUBLIC_URL, Harness, make_settings

SAME_SITE = {"Origin": PUBLIC_URL}
POST_PATHS = [
    "/subscribe",
    "/webhooks/twilio/inbound",
    "/webhooks/twilio/status",
    "/webhooks/sendgrid/events",
    "/preferences/not-a-token",
    "/confirm/not-a-token",
    "/u/not-a-token",
    "/admin/login",
]


@pytest.fixture
def harness(sqlite_url: str) -> Harness:
    return Harness(make_settings(sqlite_url))


def _limit(path: str) -> int:
    return LIMITS_BY_PATH.get(path, DEFAULT_LIMIT)


@pytest.mark.parametrize("path", POST_PATHS)
def test_a_declared_length_past_the_limit_is_a_413(harness: Harness, path: str) -> None:
    body = b"a=" + b"x" * _limit(path)
    response = harness.client.post(
        path,
        content=body,
        headers={**SAME_SITE, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413
    assert "x-content-type-options" in response.headers, "the refusal is a page like any other"


# The one-button pages answer an unknown token without reading the body at all.
READ_BEFORE_ANSWERING = [p for p in POST_PATHS if not p.startswith(("/confirm/", "/u/"))]


@pytest.mark.parametrize("path", READ_BEFORE_ANSWERING)
def test_a_chunked_body_is_refused_once_it_passes_the_limit(harness: Harness, path: str) -> None:
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        yield b"a="
        while sent < 4 * _limit(path):
            sent += 16 * 1024
            yield b"x" * 16 * 1024

    response = harness.client.post(
        path,
        content=chunks(),
        headers={**SAME_SITE, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413


def test_bodies_within_the_limit_are_read_as_before(harness: Harness) -> None:
    response = harness.client.post(
        "/webhooks/twilio/inbound",
        data={"From": "+12025550100", "Body": "x" * (DEFAULT_LIMIT - 1000)},
    )
    assert response.status_code == 403, "read whole, then refused for want of a signature"
    big_batch = "[" + ",".join(['{"event":"processed","sg_message_id":"x"}'] * 3000) + "]"
    assert DEFAULT_LIMIT < len(big_batch) < LIMITS_BY_PATH["/webhooks/sendgrid/events"]
    events = harness.client.post(
        "/webhooks/sendgrid/events",
        content=big_batch,
        headers={"Content-Type": "application/json"},
    )
    assert events.status_code != 413, "SendGrid's batches get the larger limit"
