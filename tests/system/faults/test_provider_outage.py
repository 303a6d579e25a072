"""Crash safety: the provider answers 500, then 429, then times out; each message settles once."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from service.devtools.sandbox.server import SandboxServer
from service.devtools.servers import PrivateRedis
from tests.support.faults.outcomes import Outcome, Row, by_id, message_rows, twilio_requests
from tests.support.faults.seeding import (
    add_subscribers,
    make_due_for_planning,
    phone_numbers,
    seed_due_nudges,
    skip_backoff,
)
from tests.support.faults.services import Services, poll_until, service_env
from tests.system.faults.scenario import (
    QUIET_SECONDS,
    assert_each_texted_once,
    assert_sent,
    set_faults,
)

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


# How long each provider outage lasts in the outage scenario. The issue says a
# minute each; 15 s keeps the stage in budget and loses nothing (see the test).
PHASE_SECONDS = float(os.environ.get("STEADY_FAULT_PHASE_SECONDS", "15"))
FIRST_BACKOFF_SECONDS = 60.0  # service.sending.claimed.FIRST_RETRY_DELAY
SECOND_BACKOFF_SECONDS = 240.0  # ×4 per attempt


# --- the provider fails for a while -----------------------------------------------------------


def wait_rows(
    database_url: str,
    what: str,
    check: Any,
    timeout: float = 90.0,
) -> list[Row]:
    """Poll the messages table until `check(rows)` holds; returns those rows."""
    poll_until(lambda: bool(check(message_rows(database_url))), timeout, what)
    return message_rows(database_url)


def rows_of(rows: list[Row], subscriber_ids: list[int]) -> list[Row]:
    """Each subscriber's first nudge (their welcome), not the next one planned after it."""
    first: dict[int, Row] = {}
    for row in rows:  # by id
        if row.subscriber_id in subscriber_ids and row.subscriber_id not in first:
            first[row.subscriber_id] = row
    return list(first.values())


def backoff_seconds(row: Row) -> float:
    """How far ahead the dispatcher put the retry (it writes both in one statement)."""
    return (row.scheduled_for - row.updated_at).total_seconds()


def test_provider_500_then_429_then_timeouts_each_message_settles_once(
    postgres_url: str, private_redis: PrivateRedis, sandbox: SandboxServer, tmp_path: Path
) -> None:
    """(f) The provider answers 500, then 429 with Retry-After, then not at all.

    One run, three outages back to back, then the provider recovers:

    - 500: four nudges fail their first try; each retry is put a minute out.
      Two of them are driven through all three tries inside the outage (the
      waiting skipped, the retry delays checked: 1 min, then 4 min) and fail
      with "retries exhausted"; the other two wait out the outage.
    - 429 (Retry-After): four more, planned by the workers, fail once and wait.
    - timeout: four more time out. The sandbox accepted them (the request got
      there; only the answer was lost), so they are `unknown`, and reconciliation
      finds them: marked sent, never sent again.
    - recovered: the waiting retries go out once.

    Phases of PHASE_SECONDS, not a minute each: the first retry comes a minute
    after the failure, so over a minute-long outage a message gets one try, the
    same as over 15 s; the later tries are driven here instead of waited for.
    """
    exhaust_phones, wait_phones = phone_numbers(9, 2), phone_numbers(10, 2)
    rate_phones, timeout_phones = phone_numbers(11, 4), phone_numbers(12, 4)
    exhaust_ids = seed_due_nudges(postgres_url, exhaust_phones)
    wait_ids = seed_due_nudges(postgres_url, wait_phones)
    rate_subscribers = add_subscribers(postgres_url, rate_phones, due=False)
    timeout_subscribers = add_subscribers(postgres_url, timeout_phones, due=False)
    first_ids = exhaust_ids + wait_ids

    set_faults(sandbox, {"api": "twilio", "http_status": 500})
    # A long lease: a batch of 4 timeouts takes 4 × 2 s, and must not outlive it.
    # Reconciliation waits longer than the sandbox holds a request (5 s from its start,
    # so at most 3 s past the client's timeout): the timed-out sends have landed by the
    # time it asks. Asked sooner, it could find nothing yet and send again, which is
    # why the production default is a minute.
    env = service_env(
        postgres_url,
        private_redis.url(),
        sandbox.url,
        STEADY_SEND_LEASE_SECONDS="30",
        STEADY_RECONCILE_AFTER_SECONDS="5",
    )
    outcome = Outcome(postgres_url, sandbox)
    with Services(tmp_path / "logs", env) as services:
        # Phase 1: HTTP 500.
        started = time.monotonic()

        def tried(ids: list[int], attempts: int, status: str) -> Any:
            return lambda rows: all(
                by_id(rows)[i].attempts == attempts and by_id(rows)[i].status == status for i in ids
            )

        rows = wait_rows(postgres_url, "first tries (500)", tried(first_ids, 1, "scheduled"))
        for row in (by_id(rows)[i] for i in first_ids):
            assert backoff_seconds(row) >= FIRST_BACKOFF_SECONDS - 1, row.brief()
            assert row.error_code is not None, row.brief()
        skip_backoff(postgres_url, exhaust_ids)
        rows = wait_rows(postgres_url, "second tries (500)", tried(exhaust_ids, 2, "scheduled"))
        for row in (by_id(rows)[i] for i in exhaust_ids):
            assert backoff_seconds(row) >= SECOND_BACKOFF_SECONDS - 1, row.brief()
        skip_backoff(postgres_url, exhaust_ids)
        wait_rows(postgres_url, "third tries (500)", tried(exhaust_ids, 3, "failed"))
        time.sleep(max(0.0, started + PHASE_SECONDS - time.monotonic()))

        # Phase 2: HTTP 429, Twilio 20429, Retry-After.
        started = time.monotonic()
        set_faults(
            sandbox, {"api": "twilio", "http_status": 429, "twilio_code": 20429, "retry_after": 2}
        )
        make_due_for_planning(postgres_url, rate_subscribers)
        rows = wait_rows(
            postgres_url,
            "the rate-limited first tries",
            lambda rows: (
                len(rows_of(rows, rate_subscribers)) == 4
                and all(
                    r.attempts == 1 and r.status == "scheduled"
                    for r in rows_of(rows, rate_subscribers)
                )
            ),
        )
        for row in rows_of(rows, rate_subscribers):
            assert backoff_seconds(row) >= FIRST_BACKOFF_SECONDS - 1, row.brief()
            assert row.error_code == "20429", row.brief()
        time.sleep(max(0.0, started + PHASE_SECONDS - time.monotonic()))

        # Phase 3: no answer (the sandbox holds each send past the client's timeout).
        started = time.monotonic()
        set_faults(sandbox, {"api": "twilio", "timeout": True, "sleep_seconds": 5})
        make_due_for_planning(postgres_url, timeout_subscribers)
        wait_rows(
            postgres_url,
            "the timed-out tries",
            lambda rows: (
                len(rows_of(rows, timeout_subscribers)) == 4
                and all(
                    r.attempts >= 1 and r.status in ("unknown", "sent")
                    for r in rows_of(rows, timeout_subscribers)
                )
            ),
        )
        time.sleep(max(0.0, started + PHASE_SECONDS - time.monotonic()))

        # The provider recovers; retries still waiting out their backoff go now.
        set_faults(sandbox)
        skip_backoff(postgres_url)
        rows = outcome.wait_settled()

        found = by_id(rows)
        for message_id in exhaust_ids:
            row = found[message_id]
            assert (row.status, row.attempts, row.error_detail) == (
                "failed",
                3,
                "retries exhausted",
            ), row.brief()
        assert_sent(rows, wait_ids)
        assert_sent(rows, [r.id for r in rows_of(rows, rate_subscribers)])
        timed_out = rows_of(rows, timeout_subscribers)
        assert_sent(rows, [r.id for r in timed_out])
        # Found at the provider, not sent again.
        assert all(r.attempts == 1 for r in timed_out), [r.brief() for r in timed_out]
        assert_each_texted_once(sandbox, wait_phones + rate_phones + timeout_phones)
        # Every request the provider saw is a counted attempt: no hidden retries.
        assert twilio_requests(sandbox) == sum(r.attempts for r in rows)
        services.assert_alive()
        outcome.assert_quiet(QUIET_SECONDS)
