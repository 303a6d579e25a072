"""``evaluate_rows`` on decision logs shaped as INTERFACE §4 describes, and off-policy values
from the same rows."""

from __future__ import annotations

import copy
import json
import time
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from service.learning.decision_log import DecisionLogError, parse_rows
from service.learning.design import Covariates
from service.learning.estimators import option_versus_none
from service.learning.evaluate import BANDS, evaluate_rows
from service.learning.offpolicy import PolicyError, policy_value, policy_value_rows
from service.learning.synthetic import SyntheticDesign, simulate

EFFECT_KEYS = {"name", "estimate", "ci_low", "ci_high", "scale", "people", "decisions"}
TRIAL = simulate(SyntheticDesign(), seed=42)
ROWS = TRIAL.rows()


def test_every_option_is_reported_on_both_scales_in_the_interface_shape() -> None:
    result = json.loads(json.dumps(evaluate_rows(ROWS).to_dict()))
    effects = result["effects"]
    assert {(e["name"], e["scale"]) for e in effects} == {
        (option, scale)
        for option in ("restraint", "activity", "patience", "risky_hour")
        for scale in ("risk_difference", "log_relative_risk")
    }
    for effect in effects:
        assert set(effect) == EFFECT_KEYS
        assert effect["ci_low"] < effect["estimate"] < effect["ci_high"]
        assert effect["people"] == 60
        assert 0 < effect["decisions"] < result["available_decisions"]
    assert result["people"] == 60
    assert result["decisions"] == len(ROWS)
    assert result["notes"] == []


def test_rows_give_the_same_effects_as_the_estimator_on_the_arrays() -> None:
    reported = {(e.name, e.scale): e for e in evaluate_rows(ROWS).effects}
    for scale in ("risk_difference", "log_relative_risk"):
        fit = option_versus_none(
            scale,
            option="risky_hour",
            chosen=TRIAL.chosen,
            probabilities=TRIAL.probabilities,
            outcome=TRIAL.outcome,
            person=TRIAL.person,
            available=TRIAL.available,
            covariates=Covariates(controls=(TRIAL.day * 24 + TRIAL.slot * 5) / 24 / 7),
            small_sample=True,
        )
        effect = reported[("risky_hour", scale)]
        assert effect.estimate == pytest.approx(fit.effect[0], rel=1e-9)
        assert effect.ci_high - effect.ci_low == pytest.approx(
            2 * fit.t_quantile() * fit.effect_std_error[0], rel=1e-9
        )
        assert effect.decisions == fit.decisions


def test_effects_by_days_since_signup_split_the_decisions_into_bands() -> None:
    result = evaluate_rows(ROWS)
    overall = {(e.name, e.scale): e.decisions for e in result.effects}
    by_band: dict[tuple[str, str], int] = {}
    for band in result.by_days_since_signup:
        assert (band.days_from, band.days_to) in BANDS
        assert band.ci_low < band.estimate < band.ci_high
        key = (band.name, band.scale)
        by_band[key] = by_band.get(key, 0) + band.decisions
    # 28 days: the first three bands, which together hold every decision.
    assert {(b.days_from, b.days_to) for b in result.by_days_since_signup} == set(BANDS[:3])
    assert by_band == overall


def test_probabilities_may_be_a_list_aligned_with_the_options() -> None:
    rows = copy.deepcopy(ROWS)
    for row in rows:
        row["probabilities"] = [row["probabilities"][o] for o in row["options"]]
    assert evaluate_rows(rows).to_dict() == evaluate_rows(ROWS).to_dict()


def test_a_days_since_signup_field_is_used_when_present() -> None:
    rows = copy.deepcopy(ROWS)
    for row in rows:
        row["days_since_signup"] = 100.0  # everyone long after signup
    bands = evaluate_rows(rows).by_days_since_signup
    assert {(b.days_from, b.days_to) for b in bands} == {(56, None)}


def test_decisions_whose_outcome_is_not_known_yet_are_left_out() -> None:
    rows = copy.deepcopy(ROWS)
    for row in rows[:500]:
        row["outcome"] = None
    full = {(e.name, e.scale): e.decisions for e in evaluate_rows(ROWS).effects}
    fewer = {(e.name, e.scale): e.decisions for e in evaluate_rows(rows).effects}
    assert all(fewer[key] < full[key] for key in full)


def test_an_option_never_chosen_is_left_out_with_a_note() -> None:
    rows = copy.deepcopy(ROWS)
    for row in rows:
        if row["available"]:
            row["options"].append("breathing")
            row["probabilities"]["breathing"] = 0.0
    result = evaluate_rows(rows)
    assert "breathing" not in {e.name for e in result.effects}
    assert {(n.name, n.scale) for n in result.notes} == {
        ("breathing", "risk_difference"),
        ("breathing", "log_relative_risk"),
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda row: row.pop("outcome"), "row 4: missing 'outcome'"),
        (lambda row: row.update(outcome=2), "row 4: outcome must be 1, 0 or null"),
        (lambda row: row.update(at="yesterday"), "row 4: at must be an ISO 8601 time"),
        (lambda row: row.update(available="yes"), "row 4: available must be true or false"),
        (lambda row: row["probabilities"].update(none=0.9), "row 4: probabilities must"),
        (lambda row: row.update(chosen="hug"), "row 4: chosen 'hug' had no probability"),
        (lambda row: row.update(probabilities=[0.5]), "row 4: probabilities must map"),
    ],
)
def test_malformed_rows_are_refused_naming_the_row(change: Any, message: str) -> None:
    rows = copy.deepcopy(ROWS[:10])
    available = [i for i, row in enumerate(rows) if row["available"]]
    assert 4 in available
    change(rows[4])
    with pytest.raises(DecisionLogError, match=message.replace("(", r"\(")):
        parse_rows(rows)


def test_three_hundred_thousand_decisions_are_evaluated_well_under_a_minute() -> None:
    # 1,000 people x 60 days x 5 decisions a day.
    design = SyntheticDesign(
        people=1000, days=60, decision_hours=(8.0, 11.0, 14.0, 17.0, 20.0), protection_hours=3.0
    )
    rows = simulate(design, seed=7).rows()
    assert len(rows) == 300_000
    started = time.perf_counter()
    result = evaluate_rows(rows)
    elapsed = time.perf_counter() - started
    assert elapsed < 30, elapsed
    assert len(result.effects) == 8
    assert len(result.by_days_since_signup) == 8 * 5


def evening_risky_hour(row: dict[str, Any]) -> dict[str, float]:
    evening = int(row["at"][11:13]) >= 17
    return {"risky_hour": 0.8, "none": 0.2} if evening else {"restraint": 0.5, "none": 0.5}


def test_off_policy_value_from_rows_agrees_with_per_row_target_arrays() -> None:
    from_rows = policy_value_rows(ROWS, evening_risky_hour)
    evening = TRIAL.slot == 2
    arrays = {
        "risky_hour": np.where(evening, 0.8, 0.0),
        "restraint": np.where(evening, 0.0, 0.5),
        "none": np.where(evening, 0.2, 0.5),
    }
    from_arrays = policy_value(TRIAL.log(), arrays)
    for method in ("logged", "ipw", "doubly_robust"):
        row_value, array_value = getattr(from_rows, method), getattr(from_arrays, method)
        assert row_value.estimate == pytest.approx(array_value.estimate, rel=1e-12)
        assert row_value.std_error == pytest.approx(array_value.std_error, rel=1e-12)
    assert from_rows.logged.estimate == pytest.approx(TRIAL.outcome[TRIAL.available].mean())
    for value in (from_rows.ipw, from_rows.doubly_robust):
        assert value.ci_low < value.estimate < value.ci_high
        assert value.people == 60


def test_a_target_that_chooses_what_the_log_never_could_is_refused() -> None:
    with pytest.raises(PolicyError, match="never offered"):
        policy_value_rows(ROWS, lambda row: {"breathing": 1.0})
    no_nudges = replace(SyntheticDesign(), nudge_probability=(0.0, 0.0))
    log = simulate(no_nudges, seed=1).log()
    with pytest.raises(PolicyError, match="never could have chosen"):
        policy_value(
            log, {"restraint": np.ones(len(log.person)), "none": np.zeros(len(log.person))}
        )
    with pytest.raises(PolicyError, match="sum to 1"):
        policy_value_rows(ROWS, lambda row: {"none": 0.5})
