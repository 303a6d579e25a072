"""Causal excursion effects of a randomised nudge on a proximal outcome.

Two estimators, both as in the R package MRTAnalysis (tqian/MRTAnalysis, v0.3.1):

* ``wcls`` — weighted and centred least squares (Boruvka, Almirall, Witkiewitz & Murphy
  2018, JASA 113:1112, "Assessing time-varying causal effect moderation in mobile
  health"): the effect on the risk-difference (additive) scale. Weighted least squares of Y
  on ``[Z, (A - p̃) X]`` with weight ``I · p̃^A (1-p̃)^(1-A) / (p^A (1-p)^(1-A))``; the
  coefficients of ``(A - p̃) X`` are the effect, moderated by ``X`` (an intercept alone is
  the fully marginal effect). Centring by p̃ makes the effect estimate consistent even when
  the control model ``Z`` is wrong.
* ``emee`` — the estimator of the marginal excursion effect for a binary outcome (Qian,
  Yoo, Klasnja, Almirall & Murphy 2021, Biometrika 108:507, "Estimating time-varying causal
  excursion effects in mobile health with binary outcomes", the Δ=1 case): the effect on the
  log relative risk scale, the root of
  ``Σ I·W·exp(-A Xβ) (Y - exp(Zα + A Xβ)) [Z; (A - p̃) X] = 0``.

Standard errors (both): the cluster-robust sandwich ``S⁻¹ (Σ_i u_i u_iᵀ) S⁻ᵀ`` by person,
S the derivative of the estimating function. With the small-sample correction of Mancl &
DeRouen (2001, Biometrics 57:126), as MRTAnalysis does, each person's estimating function is
``u_i = D_iᵀ (I - H_ii)⁻¹ r_i`` with the leverage ``H_ii = R_i S⁻¹ D_iᵀ`` (R_i = ∂r_i/∂θ);
by the Woodbury identity ``u_i = S (S - J_i)⁻¹ g_i`` with ``g_i = D_iᵀ r_i`` and
``J_i = D_iᵀ R_i``, a k×k solve per person instead of an m_i×m_i one. Intervals use the t
distribution with ``people - (p + q)`` degrees of freedom. MRTAnalysis's ``wcls`` applies
the correction only up to 50 people and ``emee`` always: ``small_sample=None`` does the same.
(For a linear combination of effects MRTAnalysis uses a Hotelling F with as many numerator
degrees of freedom as non-zero weights; ``combination`` uses the t quantile, as for a single
coefficient.)

Several kinds of nudge, each against "none" (``option_versus_none``): the weight at a
decision where option k or none was chosen is ``p̃/π_k`` or ``(1-p̃)/π_none`` (π the logged
probabilities of the whole multi-option randomisation), and 0 where another option was
chosen. This is Boruvka et al.'s change of measure with a reference randomisation that picks
k with p̃ and none with 1-p̃: for any function g, ``E[W g(A) | H] = p̃ g(k) + (1-p̃) g(none)``,
so the weighted data behave as a binary trial of k against none at every available decision
point and the estimand is the usual excursion effect of k against none there. It equals
restricting to the decisions where k or none was chosen with the probability renormalised to
``π_k / (π_k + π_none)``, up to the factor ``π_k + π_none`` — the same when that sum is
constant. (Lin & Qian 2025, arXiv:2504.15484, extend WCLS to categorical treatments the same
way.) The default p̃ is the mean renormalised probability, a constant: with a constant p̃ the
marginal estimand does not depend on its value, which only affects efficiency.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import statsmodels.api as sm
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, stats

from service.learning.design import (
    Covariates,
    EstimationError,
    FloatArray,
    Reference,
    Rows,
    binary_rows,
    option_rows,
)

__all__ = [
    "Combination",
    "ExcursionFit",
    "emee",
    "option_versus_none",
    "wcls",
]

Scale = Literal["risk_difference", "log_relative_risk"]

# MRTAnalysis's wcls corrects only when people <= 50 (`small <- small * 50` in xgeepack.R).
R_SMALL_SAMPLE_PEOPLE = 50


@dataclass(frozen=True)
class Combination:
    """A linear combination of effect coefficients with its interval."""

    estimate: float
    std_error: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True, eq=False)
class ExcursionFit:
    """Coefficients ordered as MRTAnalysis orders them: controls first, then effects."""

    scale: Scale
    effect_names: tuple[str, ...]
    control_names: tuple[str, ...]
    coefficients: FloatArray
    covariance: FloatArray
    people: int
    decisions: int
    small_sample: bool

    @property
    def df(self) -> int:
        return self.people - len(self.coefficients)

    @property
    def std_error(self) -> FloatArray:
        return np.sqrt(np.diag(self.covariance))

    @property
    def effect(self) -> FloatArray:
        return self.coefficients[len(self.control_names) :]

    @property
    def effect_std_error(self) -> FloatArray:
        return self.std_error[len(self.control_names) :]

    @property
    def control(self) -> FloatArray:
        return self.coefficients[: len(self.control_names)]

    @property
    def control_std_error(self) -> FloatArray:
        return self.std_error[: len(self.control_names)]

    def t_quantile(self, level: float = 0.95) -> float:
        return float(stats.t.ppf((1 + level) / 2, self.df))

    def confidence_interval(self, level: float = 0.95) -> FloatArray:
        """One row per effect coefficient: (low, high)."""
        half = self.t_quantile(level) * self.effect_std_error
        return np.column_stack([self.effect - half, self.effect + half])

    def combination(self, weights: Sequence[float], level: float = 0.95) -> Combination:
        """The effect at moderator values ``weights`` (one per effect coefficient)."""
        c = np.zeros(len(self.coefficients))
        c[len(self.control_names) :] = np.asarray(weights, dtype=float)
        estimate = float(c @ self.coefficients)
        se = float(np.sqrt(c @ self.covariance @ c))
        half = self.t_quantile(level) * se
        return Combination(estimate, se, estimate - half, estimate + half)


def wcls(
    outcome: ArrayLike,
    treatment: ArrayLike,
    probability: ArrayLike | float,
    person: ArrayLike,
    *,
    available: ArrayLike | None = None,
    moderators: ArrayLike | None = None,
    controls: ArrayLike | None = None,
    reference_probability: Reference = 0.5,
    moderator_names: Sequence[str] | None = None,
    control_names: Sequence[str] | None = None,
    small_sample: bool | None = None,
) -> ExcursionFit:
    """Effect of a binary treatment on the risk-difference scale (MRTAnalysis ``wcls``).

    ``probability`` is P(treatment = 1) as randomised; ``moderators`` and ``controls`` are
    columns without the intercept, which is always added; ``reference_probability`` (p̃) is a
    constant, a per-row array, or a function of the moderator columns.
    """
    covariates = Covariates(moderators, controls, moderator_names, control_names)
    rows = binary_rows(
        outcome, treatment, probability, person, available, reference_probability, covariates
    )
    return _fit_wcls(rows, small_sample)


def emee(
    outcome: ArrayLike,
    treatment: ArrayLike,
    probability: ArrayLike | float,
    person: ArrayLike,
    *,
    available: ArrayLike | None = None,
    moderators: ArrayLike | None = None,
    controls: ArrayLike | None = None,
    reference_probability: Reference = 0.5,
    moderator_names: Sequence[str] | None = None,
    control_names: Sequence[str] | None = None,
    small_sample: bool | None = None,
) -> ExcursionFit:
    """Effect of a binary treatment on a binary outcome, log relative risk (``emee``)."""
    covariates = Covariates(moderators, controls, moderator_names, control_names)
    rows = binary_rows(
        outcome, treatment, probability, person, available, reference_probability, covariates
    )
    return _fit_emee(rows, small_sample)


def option_versus_none(
    scale: Scale,
    *,
    option: str,
    chosen: ArrayLike,
    probabilities: Mapping[str, ArrayLike],
    outcome: ArrayLike,
    person: ArrayLike,
    available: ArrayLike | None = None,
    covariates: Covariates | None = None,
    reference_probability: Reference | None = None,
    small_sample: bool | None = None,
    none: str = "none",
) -> ExcursionFit:
    """Effect of ``option`` against ``none`` in a multi-option randomisation (see above).

    ``probabilities[o]`` is each decision's logged probability of option o (0 where o was
    not offered); decisions where either probability is 0 are not part of this comparison.
    ``reference_probability`` defaults to the mean of ``π_option / (π_option + π_none)``.
    """
    rows = option_rows(
        option,
        none,
        chosen,
        probabilities,
        outcome,
        person,
        available,
        reference_probability,
        covariates or Covariates(),
    )
    if scale == "risk_difference":
        return _fit_wcls(rows, small_sample)
    return _fit_emee(rows, small_sample)


def _fit_wcls(rows: Rows, small_sample: bool | None) -> ExcursionFit:
    design = np.column_stack(
        [rows.control_design, (rows.a - rows.ref)[:, None] * rows.effect_design]
    )
    _check_rank(design * np.sqrt(rows.weight)[:, None])
    theta = np.asarray(sm.WLS(rows.y, design, weights=rows.weight).fit().params, dtype=float)
    score = rows.weight[:, None] * design
    bread = -(score.T @ design)
    correct = rows.people <= R_SMALL_SAMPLE_PEOPLE if small_sample is None else small_sample
    cov = _sandwich(bread, score, rows.y - design @ theta, -design, rows.cluster, correct)
    return _result("risk_difference", rows, theta, cov, correct)


def _fit_emee(rows: Rows, small_sample: bool | None) -> ExcursionFit:
    if not np.isin(rows.y, (0.0, 1.0)).all():
        raise EstimationError("the log relative risk needs an outcome of 0 or 1")
    z, x, a, w = rows.control_design, rows.effect_design, rows.a, rows.weight
    q = z.shape[1]
    f = np.column_stack([z, (a - rows.ref)[:, None] * x])
    _check_rank(f * np.sqrt(w)[:, None])

    def pieces(theta: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        ax_beta = a * (x @ theta[q:])
        mean = np.exp(z @ theta[:q] + ax_beta)
        pre = w * np.exp(-ax_beta)
        score = pre[:, None] * f
        resid = rows.y - mean
        rjac = -mean[:, None] * np.column_stack([z, a[:, None] * x])
        bread = score.T @ rjac
        # exp(-A Xβ) in the score also depends on β.
        bread[:, q:] -= (f * (resid * a * pre)[:, None]).T @ x
        return score, resid, rjac, bread

    def equations(theta: FloatArray) -> tuple[FloatArray, FloatArray]:
        score, resid, _, bread = pieces(theta)
        return score.T @ resid, bread

    level = float(np.average(rows.y, weights=w))
    if not 0 < level < 1:
        raise EstimationError("the outcome never varies among these decisions")
    start = np.zeros(f.shape[1])
    start[0] = np.log(level)  # the intercept, all else 0
    solution = optimize.root(equations, start, jac=True, method="hybr")
    theta = np.asarray(solution.x, dtype=float)
    score, resid, rjac, bread = pieces(theta)
    if not solution.success or np.abs(score.T @ resid).max() > 1e-8 * len(resid):
        raise EstimationError(f"the log relative risk did not converge: {solution.message}")
    correct = True if small_sample is None else small_sample
    cov = _sandwich(bread, score, resid, rjac, rows.cluster, correct)
    return _result("log_relative_risk", rows, theta, cov, correct)


def _sandwich(
    bread: FloatArray,
    score: FloatArray,
    resid: FloatArray,
    rjac: FloatArray,
    cluster: NDArray[np.intp],
    small_sample: bool,
) -> FloatArray:
    """``S⁻¹ (Σ u_i u_iᵀ) S⁻ᵀ``, u_i Mancl–DeRouen corrected when asked (module docstring)."""
    people = int(cluster.max()) + 1
    k = bread.shape[0]
    u = _sum_by(cluster, people, score * resid[:, None])
    if small_sample:
        outer = (score[:, :, None] * rjac[:, None, :]).reshape(len(resid), k * k)
        j = _sum_by(cluster, people, outer).reshape(people, k, k)
        u = np.linalg.solve(bread[None, :, :] - j, u[:, :, None])[:, :, 0] @ bread.T
    inverse = np.linalg.inv(bread)
    return np.asarray(inverse @ (u.T @ u) @ inverse.T, dtype=float)


def _sum_by(cluster: NDArray[np.intp], people: int, values: FloatArray) -> FloatArray:
    columns = [
        np.bincount(cluster, weights=values[:, j], minlength=people) for j in range(values.shape[1])
    ]
    return np.column_stack(columns)


def _result(
    scale: Scale, rows: Rows, theta: FloatArray, cov: FloatArray, correct: bool
) -> ExcursionFit:
    return ExcursionFit(
        scale=scale,
        effect_names=rows.effect_names,
        control_names=rows.control_names,
        coefficients=theta,
        covariance=cov,
        people=rows.people,
        decisions=len(rows.y),
        small_sample=correct,
    )


def _check_rank(weighted_design: FloatArray) -> None:
    if np.linalg.matrix_rank(weighted_design) < weighted_design.shape[1]:
        raise EstimationError("the terms cannot be told apart in these decisions (rank)")
