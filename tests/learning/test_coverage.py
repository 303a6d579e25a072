"""Over many simulated trials with known truth: the 95 % intervals cover it about 95 % of the
time and the estimates are unbiased within Monte Carlo noise (service/learning/synthetic.py
documents the model and how the truth is computed exactly)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from service.learning.evaluate import evaluate_log
from service.learning.offpolicy import policy_value
from service.learning.synthetic import (
    NONE,
    SyntheticDesign,
    SyntheticTrial,
    simulate,
    true_effects,
)

# 60 people, 28 days, 3 decisions a day, four kinds of nudge with P(nudge) ~ U(0.2, 0.8).
DESIGN = SyntheticDesign()
REPLICATIONS = 500


def summarise(estimates: list[tuple[float, float, float]], truth: float) -> tuple[float, float]:
    """(coverage, mean bias in Monte Carlo standard errors)."""
    values = np.asarray(estimates)
    covered = (values[:, 1] <= truth) & (truth <= values[:, 2])
    bias = values[:, 0].mean() - truth
    mc_se = values[:, 0].std(ddof=1) / np.sqrt(len(values))
    return float(covered.mean()), float(bias / mc_se)


def test_effect_intervals_cover_the_truth_and_estimates_are_unbiased() -> None:
    truth = true_effects(DESIGN)
    runs: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    for seed in range(REPLICATIONS):
        result = evaluate_log(simulate(DESIGN, seed).log(), by_days=False)
        assert not result.notes
        for effect in result.effects:
            runs.setdefault((effect.name, effect.scale), []).append(
                (effect.estimate, effect.ci_low, effect.ci_high)
            )
    assert len(runs) == 2 * len(DESIGN.options)
    for (option, scale), estimates in runs.items():
        true_value = truth[option][0 if scale == "risk_difference" else 1]
        coverage, bias_in_se = summarise(estimates, true_value)
        assert 0.91 <= coverage <= 0.98, (option, scale, coverage)
        assert abs(bias_in_se) < 3, (option, scale, bias_in_se)
    # The design's effects are not all zero, so covering them is not trivial.
    assert truth["risky_hour"][0] > truth["restraint"][0] > truth["activity"][0] > 0.02


def evening_risky_hour(trial: SyntheticTrial) -> dict[str, np.ndarray]:
    """A policy to try: the risky-hour reminder at the evening decision, 80 % of the time;
    otherwise a plain restraint reminder half the time."""
    evening = trial.slot == 2
    zeros = np.zeros(len(trial.slot))
    target = dict.fromkeys((NONE, *DESIGN.options), zeros)
    target["risky_hour"] = np.where(evening, 0.8, 0.0)
    target["restraint"] = np.where(evening, 0.0, 0.5)
    target[NONE] = np.where(evening, 0.2, 0.5)
    return target


def test_off_policy_intervals_cover_the_target_policys_true_value() -> None:
    population = simulate(replace(DESIGN, people=20_000), seed=10_001)
    truth = population.policy_value(evening_risky_hour(population))
    logged_truth = population.outcome[population.available].mean()
    assert truth - logged_truth > 0.02  # the new policy is better than the logged one
    runs: dict[str, list[tuple[float, float, float]]] = {"ipw": [], "doubly_robust": []}
    for seed in range(200):
        trial = simulate(DESIGN, 20_000 + seed)
        result = policy_value(trial.log(), evening_risky_hour(trial))
        for method, estimates in runs.items():
            value = getattr(result, method)
            estimates.append((value.estimate, value.ci_low, value.ci_high))
    for method, estimates in runs.items():
        coverage, bias_in_se = summarise(estimates, truth)
        assert 0.91 <= coverage <= 0.98, (method, coverage)
        assert abs(bias_in_se) < 3, (method, bias_in_se)
