"""Crash safety: kill -9 a worker child before, after and during its provider call or claim."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from service.devtools.sandbox.server import SandboxServer
from service.devtools.servers import PrivateRedis
from service.storage.models import MessageStatus
from tests.support.faults.outcomes import Outcome, Row, by_id
from tests.support.faults.seeding import phone_numbers, seed_due_nudges
from tests.support.faults.services import Services, poll_until, service_env
from tests.system.faults.scenario import QUIET_SECONDS, assert_each_texted_once, assert_sent

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


CRASH_SECONDS = 90.0


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
