"""`steady simulate`: simulated people through the real planner, dispatcher and replies.

The quick test checks one small run end to end. The coverage test (the `faults` stage: it
runs the real runtime 40 times) checks that the 95 % intervals of `steady evaluate`'s
estimators, fed the real planner's log, cover the model's true effects about 95 % of the
time and that the estimates are unbiased within noise; and that the off-policy estimates
of each candidate policy cover its true value.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from statistics import mean, stdev
from typing import Any

import pytest

from service.devtools.simulate.report import summarise
from service.devtools.simulate.run import SimulationOptions, simulate
from service.reporting.evaluation import evaluate

SEEDS = range(101, 141)
COVERAGE_FLOOR = 0.88  # 95 % nominal; 40 seeds x several effects, a binomial band


def test_a_small_run_prints_truth_beside_each_estimate() -> None:
    summary = summarise(simulate(SimulationOptions(subscribers=16, days=6, seed=7)))
    json.dumps(summary)  # what --json prints
    assert summary["decisions"] >= 16 * 6 * 3
    assert 0 < summary["available_decisions"] < summary["decisions"]
    assert summary["nudges_sent"] > 0
    assert summary["contacts_logged"] > 0
    for effect in summary["effects"]:
        assert effect["ci_low"] <= effect["estimate"] <= effect["ci_high"]
        assert math.isfinite(effect["truth"])
        assert effect["covered"] == (effect["ci_low"] <= effect["truth"] <= effect["ci_high"])
    # A patience text has no effect in the model: its truth is exactly zero.
    patience = [e for e in summary["effects"] if e["name"] == "patience"]
    assert all(e["truth"] == 0 for e in patience)
    timing = summary["risky_hour_timing"]
    assert timing["mean_delay_minutes"] >= 0
    for value in summary["policies"].values():
        assert 0 < value["truth"] < 1


def test_the_same_seed_gives_the_same_run() -> None:
    first = summarise(simulate(SimulationOptions(subscribers=6, days=4, seed=3)))
    again = summarise(simulate(SimulationOptions(subscribers=6, days=4, seed=3)))
    assert first == again


def _summary(seed: int) -> dict[str, Any]:
    return summarise(simulate(SimulationOptions(subscribers=30, days=14, seed=seed)))


@pytest.mark.faults
def test_intervals_cover_the_true_effects_through_the_real_planner() -> None:
    errors: dict[tuple[str, str], list[float]] = {}
    covered: list[bool] = []
    policy_covered: list[bool] = []
    # Each seed is its own run in its own throwaway database: one process per core.
    with ProcessPoolExecutor(
        max_workers=min(2, os.cpu_count() or 1), mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        summaries = list(pool.map(_summary, SEEDS))
    for summary in summaries:
        for effect in summary["effects"]:
            covered.append(effect["covered"])
            half = (effect["ci_high"] - effect["ci_low"]) / 2
            errors.setdefault((effect["name"], effect["scale"]), []).append(
                (effect["estimate"] - effect["truth"]) / (half / 1.96)
            )
        for value in summary["policies"].values():
            if "error" not in value:
                ci = value["doubly_robust"]
                policy_covered.append(ci["ci_low"] <= value["truth"] <= ci["ci_high"])
    coverage = sum(covered) / len(covered)
    print(f"effect intervals: {len(covered)}, coverage {coverage:.3f}")
    print(
        f"policy intervals: {len(policy_covered)}, coverage "
        f"{sum(policy_covered) / len(policy_covered):.3f}"
    )
    assert coverage >= COVERAGE_FLOOR
    assert sum(policy_covered) / len(policy_covered) >= COVERAGE_FLOOR
    for (name, scale), z in errors.items():
        # Standardised errors: their mean is 0 within noise if the estimator is unbiased.
        centre = mean(z) / (stdev(z) / math.sqrt(len(z)))
        print(f"{name} {scale}: n={len(z)} mean z {mean(z):+.3f} (t {centre:+.2f})")
        assert abs(centre) < 3.5, (name, scale)


def test_the_demo_exports_its_decision_log_for_evaluate(tmp_path: Path) -> None:
    from service.devtools.demo.timeline import simulate as demo

    path = tmp_path / "decisions.json"
    demo(days=3, experiment=True, decisions=path)
    rows = json.loads(path.read_text())
    assert {row["policy"] for row in rows} == {"mrt-1"}
    assert any(row["available"] for row in rows)
    assert any(row["outcome"] is not None for row in rows)
    result = evaluate(rows)  # three people: nothing estimable, and says why
    assert result["people"] == 3
    assert result["notes"]
