"""Crash safety: Redis restarted and flushed, PostgreSQL restarted, mid-run."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from service.devtools.sandbox.server import SandboxServer
from service.devtools.servers import (
    PrivatePostgres,
    PrivateRedis,
    ServerUnavailable,
    private_postgres_database,
)
from tests.support.faults.outcomes import Outcome
from tests.support.faults.seeding import (
    add_subscribers,
    make_due_for_planning,
    phone_numbers,
    seed_due_nudges,
)
from tests.support.faults.services import Services, poll_until, require_server, service_env
from tests.system.faults.scenario import QUIET_SECONDS, assert_each_texted_once, set_faults

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


# The sandbox answers each send this late, so that a batch is still going out
# when Redis or PostgreSQL goes away.
SLOW_PROVIDER_SECONDS = 0.25


def slow_provider(sandbox: SandboxServer) -> None:
    """Every send answers after SLOW_PROVIDER_SECONDS, and is accepted."""
    set_faults(sandbox, {"api": "twilio", "timeout": True, "sleep_seconds": SLOW_PROVIDER_SECONDS})


def accepted(sandbox: SandboxServer, phones: list[str]) -> int:
    wanted = set(phones)
    return sum(1 for message in sandbox.messages("twilio") if message["to"] in wanted)


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
