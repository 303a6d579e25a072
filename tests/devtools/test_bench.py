"""`steady bench` end to end, small: every phase runs with real processes and the
run's own checks (each message once, none left; every valid row imported, every bad
one named) hold; the scratch database goes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import POSTGRES_URL, _server_missing

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

STEADY = str(Path(sys.executable).parent / "steady")
SUBSCRIBERS = 400


def bench_databases(server: str) -> set[str]:
    engine = create_engine(server.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT datname FROM pg_database WHERE datname LIKE 'steady_bench_%'")
            )
            return {name for (name,) in rows}
    finally:
        engine.dispose()


def run_json(*argv: str) -> dict[str, Any]:
    """Run a bench command on the test server (`--json`); its parsed result."""
    if not POSTGRES_URL:
        _server_missing("PostgreSQL", "STEADY_TEST_POSTGRES_URL")
    assert POSTGRES_URL is not None
    completed = subprocess.run(
        [*argv, "--json"],
        env={**os.environ, "STEADY_BENCH_DATABASE_URL": POSTGRES_URL},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def test_bench_measures_each_phase_and_sends_every_message_once() -> None:
    result = run_json(STEADY, "bench", "--subscribers", str(SUBSCRIBERS), "--latency-seconds", "3")

    assert result["database"] == "postgresql"
    assert result["planning"]["planned"] == SUBSCRIBERS
    assert result["planning"]["per_s"] > 0
    assert_planning_measured(result)
    dispatch = result["dispatch"]
    assert dispatch["messages"] == dispatch["sent"] == SUBSCRIBERS
    assert dispatch["check"]["duplicates"] == 0
    assert dispatch["check"]["left_behind"] == 0
    assert dispatch["check"]["ok"]
    assert len(dispatch["rss"]["peak_mib_per_child"]) == 2
    assert all(0 < mib < 300 for mib in dispatch["rss"]["peak_mib_per_child"])
    ceiling = result["sdk_ceiling"]
    assert (ceiling["messages"], ceiling["processes"], ceiling["threads_per_process"]) == (
        SUBSCRIBERS,
        2,
        4,
    )
    assert ceiling["check"] == {"accepted": 2 * SUBSCRIBERS, "ok": True}
    assert ceiling["per_s"] == max(ceiling["runs_per_s"])
    assert result["dispatch_vs_ceiling"] == pytest.approx(
        dispatch["per_s"] / ceiling["per_s"], rel=0.01
    )
    latency = result["latency"]
    assert latency["check"]["ok"]
    assert 0 <= latency["p50_s"] <= latency["p95_s"] <= latency["p99_s"] <= latency["max_s"]
    hooks = result["webhooks"]
    assert hooks["callbacks"] == hooks["answered_200"] == hooks["persisted"] == SUBSCRIBERS, hooks
    assert hooks["messages_delivered"] == SUBSCRIBERS
    naive = result["naive"]
    assert naive["messages"] == SUBSCRIBERS
    assert naive["check"]["ok"]
    assert result["dispatch_vs_naive"] == pytest.approx(
        dispatch["per_s"] / naive["per_s"], rel=0.01
    )
    imported = result["import"]  # last: the real `steady subscribers import`, N rows
    assert imported["rows"] == SUBSCRIBERS
    assert imported["check"]["ok"], imported["check"]
    assert imported["check"]["added"] == imported["check"]["expected"]
    assert imported["check"]["bad_rows_named"] == imported["bad"] > 0
    assert imported["per_s"] > 0
    assert imported["cpu_us_per_row"]["total"] > 0
    # The scratch database was dropped (others' benches may come and go meanwhile).
    assert result["scratch_database"].startswith("steady_bench_")
    assert result["scratch_database"] not in bench_databases(str(POSTGRES_URL))


def assert_planning_measured(result: dict[str, Any]) -> None:
    """Every planning phase looked at everyone once (one decision-log row each) and
    says what it cost: the planners' CPU and, PostgreSQL running here, the backends'."""
    phases = [result["planning"], *(result["planning_returning"][m] for m in ("off", "on"))]
    for phase in phases:
        assert phase["looked_at"] == SUBSCRIBERS, phase
        assert phase["cpu"]["planner_ms_per_subscriber"] > 0, phase
        assert phase["cpu"]["postgres_ms_per_subscriber"] is not None, phase
        assert phase["per_s_idle_cores"] > 0, phase
    on = result["planning_returning"]["on"]
    assert len(on["prior_fit_cpu_s"]) == 2  # one fit per planner process, before the clock
    assert 0 < on["reported"] < SUBSCRIBERS  # randomised: some points send, some not


def test_bench_only_planning_plans_new_and_returning_subscribers() -> None:
    if not POSTGRES_URL:
        _server_missing("PostgreSQL", "STEADY_TEST_POSTGRES_URL")
    assert POSTGRES_URL is not None
    env = {**os.environ, "STEADY_BENCH_DATABASE_URL": POSTGRES_URL}
    completed = subprocess.run(
        [STEADY, "bench", "--subscribers", str(SUBSCRIBERS), "--json", "--only", "planning"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout)
    assert "dispatch" not in result
    assert "webhooks" not in result
    assert_planning_measured(result)
    # The scratch database was dropped (others' benches may come and go meanwhile).
    assert result["scratch_database"] not in bench_databases(POSTGRES_URL)
