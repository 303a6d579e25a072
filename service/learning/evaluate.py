"""``steady evaluate``: the effect of each option against none, from a decision log.

For every option other than ``none``: the effect on the proximal outcome (1 = no ME contact
in the next 24 hours) on the risk-difference scale (WCLS) and the log relative risk scale,
each with its 95 % interval and the numbers of people and decisions, plus the same by bands
of days since signup (for the chart). Methods: estimators.py. Here:

* the effect model is marginal (intercept only) and the controls are days since signup in
  weeks (when they vary) — they only sharpen the estimate; centring keeps it unbiased if
  they are wrong;
* the reference probability p̃ is the mean of ``π_k / (π_k + π_none)``, a constant;
* the Mancl–DeRouen small-sample correction is always applied, on both scales, so that a
  young deployment with few people gets honest intervals (MRTAnalysis stops correcting WCLS
  above 50 people, where the correction barely matters);
* an effect that cannot be estimated (too few people, an option never chosen, an outcome
  that never varies) is left out and a note says why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from service.learning.decision_log import NONE, DecisionLog, parse_rows
from service.learning.design import Covariates, EstimationError
from service.learning.estimators import Scale, option_versus_none

SCALES: tuple[Scale, ...] = ("risk_difference", "log_relative_risk")
# Days since signup: the first week, the second, weeks 3-4, weeks 5-8, later.
BANDS: tuple[tuple[int, int | None], ...] = ((0, 7), (7, 14), (14, 28), (28, 56), (56, None))


@dataclass(frozen=True)
class Effect:
    name: str
    estimate: float
    ci_low: float
    ci_high: float
    scale: str
    people: int
    decisions: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BandEffect(Effect):
    days_from: int = 0
    days_to: int | None = None  # exclusive; None: no upper end


@dataclass(frozen=True)
class Note:
    name: str
    scale: str
    reason: str
    days_from: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EvaluationResult:
    effects: list[Effect]
    by_days_since_signup: list[BandEffect]
    people: int
    decisions: int
    available_decisions: int
    notes: list[Note] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "effects": [e.to_dict() for e in self.effects],
            "by_days_since_signup": [e.to_dict() for e in self.by_days_since_signup],
            "people": self.people,
            "decisions": self.decisions,
            "available_decisions": self.available_decisions,
            "notes": [n.to_dict() for n in self.notes],
        }


def evaluate_rows(
    rows: Iterable[Mapping[str, Any]], level: float = 0.95, *, by_days: bool = True
) -> EvaluationResult:
    """Evaluate rows shaped as ``steady decisions --json`` prints them, with ``outcome``."""
    return evaluate_log(parse_rows(rows), level, by_days=by_days)


def evaluate_log(
    log: DecisionLog, level: float = 0.95, *, by_days: bool = True
) -> EvaluationResult:
    usable = log.usable
    days = log.days_since_signup
    varies = usable.any() and np.ptp(days[usable]) > 0
    weeks = Covariates(controls=days / 7.0, control_names=("weeks",)) if varies else Covariates()
    result = EvaluationResult(
        effects=[],
        by_days_since_signup=[],
        people=int(log.person_code.max()) + 1 if len(log.person) else 0,
        decisions=len(log.person),
        available_decisions=int(log.available.sum()),
    )
    for option in (o for o in log.options if o != NONE):
        for scale in SCALES:
            try:
                overall = _effect(log, option, scale, usable, weeks, level)
            except EstimationError as error:
                result.notes.append(Note(option, scale, str(error)))
                continue
            result.effects.append(overall)
            for days_from, days_to in BANDS if by_days else ():
                band = (log.days_since_signup >= days_from) & usable
                if days_to is not None:
                    band &= log.days_since_signup < days_to
                if not band.any():
                    continue
                try:
                    effect = _effect(log, option, scale, band, Covariates(), level)
                except EstimationError as error:
                    result.notes.append(Note(option, scale, str(error), days_from))
                    continue
                result.by_days_since_signup.append(
                    BandEffect(**effect.to_dict(), days_from=days_from, days_to=days_to)
                )
    return result


def _effect(
    log: DecisionLog,
    option: str,
    scale: Scale,
    rows: NDArray[np.bool_],
    covariates: Covariates,
    level: float,
) -> Effect:
    fit = option_versus_none(
        scale,
        option=option,
        chosen=log.chosen,
        probabilities=log.probability_map(),
        outcome=log.outcome,
        person=log.person_code,
        available=rows,
        covariates=covariates,
        small_sample=True,
    )
    low, high = fit.confidence_interval(level)[0]
    return Effect(
        option, float(fit.effect[0]), float(low), float(high), scale, fit.people, fit.decisions
    )
