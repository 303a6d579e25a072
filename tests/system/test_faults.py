"""Crash safety with real processes (issue 5, point 3).

Each scenario seeds due nudges into a fresh PostgreSQL database, runs the real
`steady worker` (Celery prefork, two children) and `steady beat` against a Redis
of its own, sending through the real Twilio SDK to the sandbox, breaks something
(kill -9 a worker child at a crash point, restart or flush Redis, restart
PostgreSQL, make the provider fail for a while), waits until every message is
settled, and then reads the sandbox's own log against the database:

- no message went out twice (and no recipient got two);
- none is lost: every due message ends sent, or failed / expired with a reason,
  or `unknown` and then reconciled against the provider;
- the service recovered by itself: the worker and beat we started still run, and
  nobody touched the database or Redis to help it along.

Rows left `unknown` are settled by reconciliation (service/sending/reconcile.py, run by
every `steady.dispatch` task): found at the provider, they are `sent`; not found,
they are sent again, once.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.devtools.sandbox.server import SandboxServer
from service.devtools.servers import (
    PrivatePostgres,
    PrivateRedis,
    ServerUnavailable,
    private_postgres_database,
)
from service.storage.models import MessageStatus
from tests.support.faults import (
    TWILIO_TOKEN,
    Outcome,
    Row,
    Services,
    add_subscribers,
    by_id,
    make_due_for_planning,
    message_rows,
    phone_numbers,
    poll_until,
    require_server,
    seed_due_nudges,
    service_env,
    skip_backoff,
    twilio_requests,
)

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

# How long each provider outage lasts in the outage scenario. The issue says a
# minute each; 15 s keeps the stage in budget and loses nothing (see the test).
PHASE_SECONDS = float(os.environ.get("STEADY_FAULT_PHASE_SECONDS", "15"))
FIRST_BACKOFF_SECONDS = 60.0  # service.sending.claimed.FIRST_RETRY_DELAY
SECOND_BACKOFF_SECONDS = 240.0  # ×4 per attempt
CRASH_SECONDS = 90.0
QUIET_SECONDS = 2.0
# The sandbox answers each send this late, so that a batch is still going out
# when Redis or PostgreSQL goes away.
SLOW_PROVIDER_SECONDS = 0.25


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    """The Twilio stand-in; no status callbacks, so sent rows stay `sent`."""
    with SandboxServer(auth_token=TWILIO_TOKEN, callbacks=False) as server:
        yield server


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A Redis of this test's own: nothing shared is restarted or flushed, and no other
    test run's workers can take our tasks."""
    try:
        server = PrivateRedis(tmp_path / "redis")
    except ServerUnavailable as exc:
        require_server(f"{exc} (the fault tests start a Redis of their own)")
    try:
        server.start()
        yield server
    finally:
        server.stop()


def set_faults(sandbox: SandboxServer, *rules: dict[str, Any]) -> None:
    """Replace the sandbox's fault rules (none: it behaves again)."""
    httpx.delete(f"{sandbox.url}/sandbox/faults", timeout=10).raise_for_status()
    if rules:
        httpx.post(f"{sandbox.url}/sandbox/faults", json=list(rules), timeout=10).raise_for_status()


def slow_provider(sandbox: SandboxServer) -> None:
    """Every send answers after SLOW_PROVIDER_SECONDS, and is accepted."""
    set_faults(sandbox, {"api": "twilio", "timeout": True, "sleep_seconds": SLOW_PROVIDER_SECONDS})


def accepted(sandbox: SandboxServer, phones: list[str]) -> int:
    wanted = set(phones)
    return sum(1 for message in sandbox.messages("twilio") if message["to"] in wanted)


def assert_each_texted_once(sandbox: SandboxServer, phones: list[str]) -> None:
    copies = Counter(message["to"] for message in sandbox.messages("twilio"))
    wrong = {phone: copies[phone] for phone in phones if copies[phone] != 1}
    assert not wrong, f"{len(wrong)} of {len(phones)} recipients not texted exactly once"


def assert_sent(rows: list[Row], ids: list[int]) -> None:
    found = by_id(rows)
    not_sent = [found[i].brief() for i in ids if found[i].status != MessageStatus.SENT]
    assert not not_sent, f"not sent: {not_sent}"


def resent(rows: list[Row], ids: list[int]) -> int:
    """How many of these rows were claimed twice: reconciled as not sent, sent again."""
    found = by_id(rows)
    assert all(found[i].attempts in (1, 2) for i in ids), [found[i].brief() for i in ids]
    return sum(1 for i in ids if found[i].attempts == 2)


def crash_env(marker: Path, point: str) -> dict[str, str]:
    return {"STEADY_CRASH_AT": point, "STEADY_CRASH_MARKER": str(marker)}


def wait_for_crash(services: Services, marker: Path) -> None:
    poll_until(marker.exists, CRASH_SECONDS, "a pool child to reach its crash point")
    # Celery's main process saw its child die of SIGKILL and replaced it.
    poll_until(
        lambda: "signal 9" in services.log_text("worker.log"),
        CRASH_SECONDS,
        "the worker to notice its child was killed",
    )


# --- kill -9 a worker child -------------------------------------------------------------


def test_child_killed_before_the_provider_call_its_batch_goes_out_once(
    postgres_url: str, private_redis: PrivateRedis, sandbox: SandboxServer, tmp_path: Path
) -> None:
    """(a) A child dies with a claimed batch nobody sent: lease, unknown, not found, resent.

    Batches of 4: the child's 5th send is the first of its second batch, so it
    dies holding 4 rows committed as `sending` that never reached the provider.
    SMS is paced (a high rate, as in (b)) so the batch is sent one by one in claim
    order: through an unlimited channel's threads, the batch's other rows could
    reach the provider before the 5th send's thread is killed.
    """
    phones = phone_numbers(1, 24)
    ids = seed_due_nudges(postgres_url, phones)
    marker = tmp_path / "crashed"
    env = service_env(
        postgres_url, private_redis.url(), sandbox.url, STEADY_SMS_RATE_PER_SECOND="1000"
    )
    outcome = Outcome(postgres_url, sandbox)
    with Services(
        tmp_path / "logs", env, worker_env=crash_env(marker, "before_send:5")
    ) as services:
        wait_for_crash(services, marker)

        def nothing_at_the_provider(rows: list[Row], copies: Counter[str]) -> None:
            unknown = [r for r in rows if r.status == MessageStatus.UNKNOWN]
            assert all(copies[r.to] == 0 for r in unknown), "an unsent row has a copy"

        rows = outcome.wait_settled(on_unknown=nothing_at_the_provider)
        assert_sent(rows, ids)
        assert_each_texted_once(sandbox, phones)
        # The dead child's batch, and only it, was claimed twice: not found, resent.
        assert 1 <= resent(rows, ids) <= 4
        services.assert_alive()
        outcome.assert_quiet(QUIET_SECONDS)


def test_child_killed_after_the_provider_accepted_nothing_is_resent(
    postgres_url: str, private_redis: PrivateRedis, sandbox: SandboxServer, tmp_path: Path
) -> None:
    """(b) A child dies after its 5th accepted send, before recording the batch of 8.

    The 5 the provider accepted are found by reconciliation and marked sent; the
    3 it never saw are put back and sent once. SMS is paced here (a high rate, so
    the test stays quick): a paced channel sends one by one in claim order, so the
    kill comes exactly after the 5th (an unlimited channel sends through threads,
    and the batch's other sends may all have been accepted by then).
    """
    phones = phone_numbers(2, 24)
    ids = seed_due_nudges(postgres_url, phones)
    marker = tmp_path / "crashed"
    env = service_env(
        postgres_url,
        private_redis.url(),
        sandbox.url,
        STEADY_DISPATCH_BATCH_SIZE="8",
        STEADY_SMS_RATE_PER_SECOND="1000",
    )
    outcome = Outcome(postgres_url, sandbox)
    with Services(tmp_path / "logs", env, worker_env=crash_env(marker, "after_send:5")) as services:
        wait_for_crash(services, marker)
        rows = outcome.wait_settled()
        assert_sent(rows, ids)
        # Had reconciliation missed any of the 5 accepted, it would have been resent.
        assert_each_texted_once(sandbox, phones)
        # Only the rest of the dead child's batch was claimed again (24 rows, batches
        # of 8, two children: the child's first batch was full, 3 after the 5th).
        assert 1 <= resent(rows, ids) <= 3
        services.assert_alive()
        outcome.assert_quiet(QUIET_SECONDS)


def test_child_killed_mid_claim_leaves_the_rows_to_others(
    postgres_url: str, private_redis: PrivateRedis, sandbox: SandboxServer, tmp_path: Path
) -> None:
    """(c) A child dies inside its second claim, before the commit.

    PostgreSQL rolls the claim back when the connection drops: the rows stay
    `scheduled`, unclaimed, and the other child and the replacement send them.
    Nothing is left for reconciliation, and no row counts the dead attempt.
    """
    phones = phone_numbers(3, 24)
    ids = seed_due_nudges(postgres_url, phones)
    marker = tmp_path / "crashed"
    env = service_env(postgres_url, private_redis.url(), sandbox.url)
    outcome = Outcome(postgres_url, sandbox)
    with Services(tmp_path / "logs", env, worker_env=crash_env(marker, "claim:2")) as services:
        wait_for_crash(services, marker)
        rows = outcome.wait_settled()
        assert_sent(rows, ids)
        assert_each_texted_once(sandbox, phones)
        found = by_id(rows)
        assert all(found[i].attempts == 1 for i in ids), [found[i].brief() for i in ids]
        services.assert_alive()
        outcome.assert_quiet(QUIET_SECONDS)


# --- the servers go away -------------------------------------------------------------------


def test_redis_restarted_and_flushed_mid_run_backlog_drains_once(
    postgres_url: str, private_redis: PrivateRedis, sandbox: SandboxServer, tmp_path: Path
) -> None:
    """(d) Redis is killed and comes back empty mid-run; later it is flushed mid-run.

    Redis carries only wake-ups: the worker and beat reconnect by themselves, and
    the subscribers who become due after each event (planned by the workers'
    own `steady.plan`, so the tasks must flow again) are texted once.
    """
    first, second, third = phone_numbers(4, 12), phone_numbers(5, 12), phone_numbers(6, 12)
    seed_due_nudges(postgres_url, first)
    after_restart = add_subscribers(postgres_url, second, due=False)
    after_flush = add_subscribers(postgres_url, third, due=False)
    slow_provider(sandbox)
    env = service_env(postgres_url, private_redis.url(), sandbox.url)
    outcome = Outcome(postgres_url, sandbox)
    with Services(tmp_path / "logs", env) as services:
        services.extra_logs.extend(sorted((tmp_path / "redis").glob("*.log")))
        poll_until(lambda: accepted(sandbox, first) >= 3, 60, "the first sends", outcome.describe)
        private_redis.crash()
        time.sleep(1.0)  # down for a moment, as a real restart is
        private_redis.start()
        make_due_for_planning(postgres_url, after_restart)
        poll_until(
            lambda: accepted(sandbox, second) >= 3,
            90,
            "sends planned after the Redis restart",
            outcome.describe,
        )
        private_redis.flushall()
        make_due_for_planning(postgres_url, after_flush)
        # Wait for the third group's own sends: the others may all be settled before
        # a planning pass has made its rows, and "settled" would then come too soon.
        poll_until(
            lambda: accepted(sandbox, third) >= len(third),
            90,
            "sends planned after the Redis flush",
            outcome.describe,
        )
        rows = outcome.wait_settled()
        assert len(rows) >= 36
        assert_each_texted_once(sandbox, first + second + third)
        services.assert_alive()
        outcome.assert_quiet(QUIET_SECONDS)


def test_postgres_restarted_mid_run_workers_recover_without_restart(
    private_redis: PrivateRedis, sandbox: SandboxServer, tmp_path: Path
) -> None:
    """(e) PostgreSQL (a private cluster) stops mid-batch and starts again 3 s later.

    The batch in flight reaches the provider but cannot be recorded: those rows
    stay `sending`, their lease runs out, they become `unknown` and reconciliation
    finds them. The workers' pools reconnect (pre-ping) and carry on.
    """
    first, second = phone_numbers(7, 16), phone_numbers(8, 8)
    try:
        PrivatePostgres.check_installed()
    except ServerUnavailable as exc:
        require_server(f"{exc} (this test restarts a PostgreSQL cluster of its own)")
    with private_postgres_database(tmp_path / "postgres") as (cluster, database_url):
        seed_due_nudges(database_url, first)
        later = add_subscribers(database_url, second, due=False)
        slow_provider(sandbox)
        env = service_env(database_url, private_redis.url(), sandbox.url)
        outcome = Outcome(database_url, sandbox)
        with Services(tmp_path / "logs", env) as services:
            services.extra_logs.append(cluster.logfile)
            poll_until(
                lambda: accepted(sandbox, first) >= 4, 60, "the first sends", outcome.describe
            )
            cluster.stop("fast")
            time.sleep(3.0)  # down long enough for dispatch ticks to fail meanwhile
            cluster.start()
            make_due_for_planning(database_url, later)
            rows = outcome.wait_settled()
            assert len(rows) >= 24
            assert_each_texted_once(sandbox, first + second)
            services.assert_alive()
            outcome.assert_quiet(QUIET_SECONDS)


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
