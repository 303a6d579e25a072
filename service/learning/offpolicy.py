"""The value of a new pacing policy, estimated from the logged randomised decisions.

The value of a target policy π_e is the expected proximal outcome (1 = no ME contact in the
next 24 hours) at an available decision if π_e had chosen there, everything else as logged —
the one-step (contextual bandit) value. With the logged probabilities π_b and
``ρ_t = π_e(A_t | H_t) / π_b(A_t | H_t)``:

* ``ipw``: the self-normalised inverse propensity weighted mean ``Σ ρ_t Y_t / Σ ρ_t``
  (Hájek; Swaminathan & Joachims 2015, "The self-normalized estimator for counterfactual
  learning");
* ``doubly_robust``: ``mean(Σ_a π_e(a|H_t) q(H_t, a) + ρ_t (Y_t - q(H_t, A_t)))`` (Dudík,
  Langford & Li 2011, "Doubly robust policy evaluation and learning"), q a logistic regression
  of Y on the option and weeks since signup (statsmodels GLM). With the probabilities known
  it is unbiased however wrong q is; a good q only narrows the interval.
* ``logged``: the mean outcome as logged, for comparison.

Intervals: t with people - 1 degrees of freedom and the linearised variance clustered by
person, ``G/(G-1) Σ_i (Σ_t a_t - V b_t)² / (Σ b_t)²`` for ``V = Σ a / Σ b``. The fitting of q
is ignored there: with known probabilities its first-order effect on the DR estimate is zero.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import statsmodels.api as sm
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from service.learning.decision_log import DecisionLog, FloatArray, parse_rows

TargetPolicy = Callable[[Mapping[str, Any]], Mapping[str, float]] | Mapping[str, ArrayLike]


class PolicyError(ValueError):
    """The target policy cannot be evaluated from this log (e.g. it chooses the unlogged)."""


@dataclass(frozen=True)
class PolicyValue:
    method: str
    estimate: float
    std_error: float
    ci_low: float
    ci_high: float
    people: int
    decisions: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class OffPolicyResult:
    logged: PolicyValue
    ipw: PolicyValue
    doubly_robust: PolicyValue

    def to_dict(self) -> dict[str, Any]:
        return {name: value.to_dict() for name, value in self.__dict__.items()}


def policy_value_rows(
    rows: Iterable[Mapping[str, Any]], target: TargetPolicy, level: float = 0.95
) -> OffPolicyResult:
    """``policy_value`` of rows shaped as ``steady decisions --json`` prints them."""
    return policy_value(parse_rows(rows), target, level)


def policy_value(log: DecisionLog, target: TargetPolicy, level: float = 0.95) -> OffPolicyResult:
    """Value of ``target``: a function of a logged row giving option -> probability, or
    per-row probability arrays by option (aligned with the log's rows)."""
    usable = np.flatnonzero(log.usable)
    if usable.size == 0:
        raise PolicyError("no available decision with a known outcome")
    logged = log.probabilities[usable]
    wanted = _target_matrix(log, target, usable)
    if ((wanted > 0) & (logged == 0)).any():
        raise PolicyError("the target chooses options the log never could have chosen there")
    chosen = np.asarray([log.options.index(c) for c in log.chosen[usable]])
    picked = np.arange(usable.size), chosen
    rho = wanted[picked] / logged[picked]
    y = log.outcome[usable]
    _, person = np.unique(log.person_code[usable], return_inverse=True)
    q = _outcome_model(log, usable, y, chosen)
    direct = (wanted * q).sum(axis=1) + rho * (y - q[picked])
    ones = np.ones_like(y)
    return OffPolicyResult(
        logged=_ratio("logged", y, ones, person, level),
        ipw=_ratio("ipw", rho * y, rho, person, level),
        doubly_robust=_ratio("doubly_robust", direct, ones, person, level),
    )


def _target_matrix(log: DecisionLog, target: TargetPolicy, usable: NDArray[np.intp]) -> FloatArray:
    wanted = np.zeros((usable.size, len(log.options)))
    if callable(target):
        if len(log.rows) != len(log.person):
            raise PolicyError("a target function needs the logged rows")
        for j, i in enumerate(usable):
            for option, probability in target(log.rows[i]).items():
                wanted[j, _index(log, option)] = probability
    else:
        for option, values in target.items():
            wanted[:, _index(log, option)] = np.asarray(values, dtype=float)[usable]
    if (wanted < 0).any() or (np.abs(wanted.sum(axis=1) - 1) > 1e-6).any():
        raise PolicyError("target probabilities must be non-negative and sum to 1")
    return wanted


def _index(log: DecisionLog, option: str) -> int:
    if option not in log.options:
        raise PolicyError(f"the log never offered {option!r}")
    return log.options.index(option)


def _outcome_model(
    log: DecisionLog, usable: NDArray[np.intp], y: FloatArray, chosen: NDArray[np.intp]
) -> FloatArray:
    """q(H, a) for every option a: logistic in the option and weeks since signup."""
    k = len(log.options)
    weeks = log.days_since_signup[usable] / 7.0
    dummies = np.eye(k)[:, 1:]  # "none" (index 0) is the baseline
    design = np.column_stack([np.ones_like(y), weeks, dummies[chosen]])
    seen = design.any(axis=0)  # options never chosen get no term (and q of none)
    model = sm.GLM(y, design[:, seen], family=sm.families.Binomial())
    coefficients = np.zeros(design.shape[1])
    coefficients[seen] = np.asarray(model.fit().params, dtype=float)
    eta = coefficients[0] + coefficients[1] * weeks
    linear = eta[:, None] + np.concatenate([[0.0], coefficients[2:]])[None, :]
    if not np.isfinite(linear).all():
        raise PolicyError("the outcome model did not converge")
    return np.asarray(1 / (1 + np.exp(-linear)), dtype=float)


def _ratio(
    method: str, a: FloatArray, b: FloatArray, person: NDArray[np.intp], level: float
) -> PolicyValue:
    people = int(person.max()) + 1
    if people < 2 or b.sum() <= 0:
        raise PolicyError("too few people or no decision the target would have made")
    value = float(a.sum() / b.sum())
    influence = np.bincount(person, weights=a - value * b, minlength=people)
    se = float(np.sqrt(people / (people - 1) * (influence**2).sum()) / b.sum())
    half = float(stats.t.ppf((1 + level) / 2, people - 1)) * se
    return PolicyValue(method, value, se, value - half, value + half, people, len(a))
