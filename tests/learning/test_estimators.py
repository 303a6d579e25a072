"""WCLS and the log-relative-risk estimator against MRTAnalysis's printed outputs.

The reference numbers and where each was printed are in fixtures/mrtanalysis_reference.json;
every comparison requires agreement to every printed digit (half a unit in the last place),
or to 1e-7 relative where more digits were printed than R's root finder for the log relative
risk (rootSolve::multiroot, rtol 1e-6) pins down; MRTAnalysis's own tests allow 1e-7 too.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import statsmodels.api as sm

from service.learning.design import EstimationError
from service.learning.estimators import (
    ExcursionFit,
    emee,
    option_versus_none,
    wcls,
)

FIXTURES = Path(__file__).parent / "fixtures"
REFERENCE: dict[str, Any] = json.loads((FIXTURES / "mrtanalysis_reference.json").read_text())


def load(name: str) -> dict[str, np.ndarray]:
    with (FIXTURES / f"{name}.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return {key: np.array([float(row[key]) for row in rows]) for key in rows[0]}


DATA = {"data_mimicHeartSteps": load("data_mimicHeartSteps"), "data_binary": load("data_binary")}


def printed_close(actual: float, printed: str) -> bool:
    """True when ``actual`` rounds to the printed number (or agrees to 1e-7 relative)."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    tolerance = max(0.5 * 10.0**-decimals * (1 + 1e-9), 1e-7 * abs(float(printed)))
    return abs(actual - float(printed)) <= tolerance


def assert_printed(actual: Any, printed: Any, what: str) -> None:
    values = np.atleast_1d(np.asarray(actual, dtype=float)).ravel()
    texts = np.atleast_1d(np.asarray(printed, dtype=object)).ravel()
    assert len(values) == len(texts), what
    for value, text in zip(values, texts, strict=True):
        assert printed_close(float(value), str(text)), f"{what}: {value!r} vs printed {text}"


def fit_case(
    case: dict[str, Any], estimator: Any, small_sample: bool | None = None
) -> ExcursionFit:
    data, args = DATA[case["data"]], case["args"]
    probability = args["probability"]

    def columns(names: list[str]) -> np.ndarray | None:
        return np.column_stack([data[n] for n in names]) if names else None

    fit: ExcursionFit = estimator(
        data[args["outcome"]],
        data[args["treatment"]],
        data[probability] if isinstance(probability, str) else probability,
        data["userid"],
        available=data[args["available"]] if args["available"] else None,
        moderators=columns(args["moderators"]),
        controls=columns(args["controls"]),
        reference_probability=args["reference_probability"],
        small_sample=small_sample,
    )
    return fit


def check_summary(fit: ExcursionFit, case: dict[str, Any]) -> None:
    name = case["name"]
    assert fit.df == case["df"], name
    assert_printed(fit.effect, case["effect"], f"{name} effect")
    assert_printed(fit.effect_std_error, case["std_error"], f"{name} std error")
    interval = fit.confidence_interval()
    assert_printed(interval[:, 0], case["ci_low"], f"{name} ci low")
    assert_printed(interval[:, 1], case["ci_high"], f"{name} ci high")
    if "control" in case:
        assert_printed(fit.control, case["control"], f"{name} control")
        assert_printed(fit.control_std_error, case["control_std_error"], f"{name} control se")
    for combo in case.get("combinations", []):
        result = fit.combination(combo["weights"])
        assert_printed(result.estimate, combo["estimate"], f"{name} {combo['weights']}")
        assert_printed(result.std_error, combo["std_error"], f"{name} {combo['weights']} se")
        if "ci_low" in combo:
            assert_printed(result.ci_low, combo["ci_low"], f"{name} {combo['weights']} low")
            assert_printed(result.ci_high, combo["ci_high"], f"{name} {combo['weights']} high")


WCLS_CASES = {case["name"]: case for case in REFERENCE["wcls"]}
EMEE_CASES = {case["name"]: case for case in REFERENCE["emee"]}


def test_wcls_coefficients_match_the_mrtanalysis_unit_test() -> None:
    case = WCLS_CASES["test_wcls_beta_hat"]
    fit = fit_case(case, wcls)
    assert_printed(fit.coefficients, case["coefficients"], "coefficients")


def test_wcls_small_sample_standard_errors_match_a_seven_digit_printout() -> None:
    case = WCLS_CASES["tutorial_day_in_study"]
    fit = fit_case(case, wcls)
    assert fit.small_sample, "37 people: MRTAnalysis applies Mancl-DeRouen"
    check_summary(fit, case)


@pytest.mark.parametrize("name", ["vignette_fit1", "vignette_fit2", "vignette_fit3"])
def test_wcls_matches_the_mrtanalysis_vignette(name: str) -> None:
    check_summary(fit_case(WCLS_CASES[name], wcls), WCLS_CASES[name])


def test_wcls_without_the_correction_would_not_match_the_reference() -> None:
    # The correction matters at this size: the plain sandwich misses the printed digits.
    case = WCLS_CASES["tutorial_day_in_study"]
    plain = fit_case(case, wcls, small_sample=False)
    assert not printed_close(float(plain.effect_std_error[0]), case["std_error"][0])
    assert plain.effect_std_error[0] < fit_case(case, wcls).effect_std_error[0]


def test_emee_matches_the_mrtanalysis_unit_tests() -> None:
    case = EMEE_CASES["test_emee_time_var1"]
    plain = fit_case(case, emee, small_sample=False)
    adjusted = fit_case(case, emee)
    assert adjusted.small_sample
    assert adjusted.df == case["df"]
    assert_printed(adjusted.effect, case["beta_hat"], "beta_hat")
    assert_printed(adjusted.control, case["alpha_hat"], "alpha_hat")
    assert_printed(plain.effect_std_error, case["beta_se"], "beta_se")
    assert_printed(plain.control_std_error, case["alpha_se"], "alpha_se")
    assert_printed(adjusted.effect_std_error, case["beta_se_adjusted"], "beta_se_adjusted")
    assert_printed(adjusted.control_std_error, case["alpha_se_adjusted"], "alpha_se_adjusted")
    assert_printed(plain.covariance, case["varcov"], "varcov")
    assert_printed(adjusted.covariance, case["varcov_adjusted"], "varcov_adjusted")
    assert_printed(adjusted.confidence_interval(), case["conf_int_adjusted"], "conf_int_adjusted")


@pytest.mark.parametrize("name", ["vignette_fit4", "vignette_fit5"])
def test_emee_matches_the_mrtanalysis_vignette(name: str) -> None:
    check_summary(fit_case(EMEE_CASES[name], emee), EMEE_CASES[name])


def simulated_trial(people: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    person = np.repeat(np.arange(people), 40)
    x = rng.normal(size=person.size)
    p = np.where(x > 0, 0.7, 0.3)
    a = (rng.random(person.size) < p).astype(float)
    y = 1 + 0.5 * x + 0.3 * a + rng.normal(size=person.size) + rng.normal(size=people)[person]
    return {"person": person, "x": x, "p": p, "a": a, "y": y}


def test_plain_sandwich_equals_statsmodels_cluster_robust_wls() -> None:
    # Over 50 people MRTAnalysis applies no correction; WCLS is then weighted least squares
    # of y on [1, x, A - p̃] with statsmodels' cluster sandwich (without its own df factor).
    d = simulated_trial(people=80, seed=3)
    fit = wcls(d["y"], d["a"], d["p"], d["person"], controls=d["x"], reference_probability=0.5)
    assert not fit.small_sample
    weight = np.where(d["a"] == 1, 0.5 / d["p"], 0.5 / (1 - d["p"]))
    design = np.column_stack([np.ones_like(d["x"]), d["x"], d["a"] - 0.5])
    reference = sm.WLS(d["y"], design, weights=weight).fit(
        cov_type="cluster", cov_kwds={"groups": d["person"], "use_correction": False}
    )
    np.testing.assert_allclose(fit.coefficients, reference.params, rtol=1e-10)
    np.testing.assert_allclose(fit.std_error, reference.bse, rtol=1e-10)


def test_each_option_against_none_ignores_decisions_where_another_option_was_chosen() -> None:
    rng = np.random.default_rng(5)
    n = 6000
    person = np.repeat(np.arange(60), n // 60)
    options = np.array(["none", "restraint", "activity"])
    probs = {"none": np.full(n, 0.4), "restraint": np.full(n, 0.3), "activity": np.full(n, 0.3)}
    chosen = rng.choice(options, size=n, p=[0.4, 0.3, 0.3])
    y = (rng.random(n) < np.where(chosen == "restraint", 0.7, 0.5)).astype(float)
    fits = {
        scale: option_versus_none(
            scale,
            option="restraint",
            chosen=chosen,
            probabilities=probs,
            outcome=y,
            person=person,
        )
        for scale in ("risk_difference", "log_relative_risk")
    }
    # The same as a binary trial among the decisions between restraint and none, with the
    # probability renormalised (π_k + π_none is constant here).
    pair = (chosen == "restraint") | (chosen == "none")
    treated = (chosen[pair] == "restraint").astype(float)
    p_pair, ref = 0.3 / 0.7, 0.3 / 0.7
    binary_rd = wcls(y[pair], treated, p_pair, person[pair], reference_probability=ref)
    binary_rr = emee(y[pair], treated, p_pair, person[pair], reference_probability=ref)
    np.testing.assert_allclose(fits["risk_difference"].effect, binary_rd.effect, rtol=1e-10)
    np.testing.assert_allclose(
        fits["risk_difference"].effect_std_error, binary_rd.effect_std_error, rtol=1e-10
    )
    np.testing.assert_allclose(fits["log_relative_risk"].effect, binary_rr.effect, rtol=1e-8)
    assert fits["risk_difference"].decisions == int(pair.sum())
    assert 0.1 < fits["risk_difference"].effect[0] < 0.3  # truth 0.2
    assert 0.2 < fits["log_relative_risk"].effect[0] < 0.5  # truth log(1.4) = 0.34


def test_bad_input_is_refused_with_a_clear_error() -> None:
    d = simulated_trial(people=10, seed=1)
    with pytest.raises(EstimationError, match="between 0 and 1"):
        wcls(d["y"], d["a"], 1.0, d["person"])
    with pytest.raises(EstimationError, match="treatment must be 0 or 1"):
        wcls(d["y"], d["a"] * 2, 0.5, d["person"])
    with pytest.raises(EstimationError, match="too few"):
        wcls(d["y"][:80], d["a"][:80], 0.5, d["person"][:80], controls=d["x"][:80])
    with pytest.raises(EstimationError, match="outcome of 0 or 1"):
        emee(d["y"], d["a"], 0.5, d["person"])
    with pytest.raises(EstimationError, match="shape"):
        wcls(d["y"], d["a"], d["p"][:5], d["person"])


def test_a_reference_probability_may_be_a_function_of_the_moderators() -> None:
    d = simulated_trial(people=40, seed=8)

    def by_moderator(moderators: np.ndarray) -> np.ndarray:
        return np.where(moderators[:, 0] > 0, 0.6, 0.4)

    as_function = wcls(
        d["y"], d["a"], d["p"], d["person"], moderators=d["x"], reference_probability=by_moderator
    )
    as_array = wcls(
        d["y"],
        d["a"],
        d["p"],
        d["person"],
        moderators=d["x"],
        reference_probability=np.where(d["x"] > 0, 0.6, 0.4),
    )
    constant = wcls(d["y"], d["a"], d["p"], d["person"], moderators=d["x"])
    np.testing.assert_array_equal(as_function.coefficients, as_array.coefficients)
    assert not np.allclose(as_function.coefficients, constant.coefficients)
