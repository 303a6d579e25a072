"""The true effects of a simulated run, from the model and the decisions the planner made.

For each decision t the run keeps ``S_a(t)``: the chance of no contact of their own in the
gap up to the next point had option a been chosen there (its nudge sent when the planner
would have sent it: at the point, or at the risky hour the planner computes), and the
probabilities the planner logged. The outcome covers the 24 hours after t, which are the
gaps of t and of the person's next two points, so

    P_a(t) = S_a(t) · E[S(t + 1)] · E[S(t + 2)],   E[S(u)] = Σ_b π_u(b) S_b(u)

(a point that was not randomised contributes what it did). Then, over the decisions where
option k and none were both offered, the true effect is ``mean(P_k - P_none)`` on the risk
difference scale and ``log(mean P_k / mean P_none)`` on the log relative risk scale: what
the estimators estimate (``service.learning.synthetic`` explains why). A policy's true
value is ``mean Σ_a π_e(a) P_a(t)`` over the available decisions.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NONE = "none"


@dataclass(frozen=True)
class DecisionTruth:
    person: int
    at: float  # UTC hours since the epoch
    probabilities: dict[str, float]
    survival: dict[str, float]  # S_a(t) by option (and for what was chosen)
    chosen: str
    send_delay_hours: dict[str, float]  # option -> hours from the point to its send

    def expected_survival(self) -> float:
        randomised = sum(1 for p in self.probabilities.values() if p > 0) > 1
        if not randomised:
            return self.survival[self.chosen]
        return sum(p * self.survival[o] for o, p in self.probabilities.items())


def outcome_chances(
    truths: Mapping[int, DecisionTruth], ids: Sequence[int]
) -> dict[int, dict[str, float]]:
    """``P_a(t)`` for every option of every decision that has two later points."""
    by_person: dict[int, list[tuple[float, int]]] = defaultdict(list)
    for decision_id in ids:
        truth = truths[decision_id]
        by_person[truth.person].append((truth.at, decision_id))
    chances: dict[int, dict[str, float]] = {}
    for decisions in by_person.values():
        decisions.sort()
        for position, (_, decision_id) in enumerate(decisions[:-2]):
            later = [truths[decisions[position + m][1]].expected_survival() for m in (1, 2)]
            rest = later[0] * later[1]
            own = truths[decision_id]
            chances[decision_id] = {o: s * rest for o, s in own.survival.items()}
    return chances


def _offered(row: Mapping[str, Any], option: str, none: str = NONE) -> bool:
    p = row["probabilities"]
    return bool(row["available"]) and p.get(option, 0) > 0 and p.get(none, 0) > 0


def true_effect(
    rows: Sequence[Mapping[str, Any]],
    ids: Sequence[int],
    chances: Mapping[int, Mapping[str, float]],
    option: str,
    none: str = NONE,
) -> dict[str, float] | None:
    """The true effect of ``option`` against ``none`` on both scales (module docstring)."""
    treated, control = [], []
    for row, decision_id in zip(rows, ids, strict=True):
        if row["outcome"] is None or decision_id not in chances or not _offered(row, option, none):
            continue
        treated.append(chances[decision_id][option])
        control.append(chances[decision_id][none])
    if not treated:
        return None
    mean_t, mean_c = sum(treated) / len(treated), sum(control) / len(control)
    return {
        "risk_difference": mean_t - mean_c,
        "log_relative_risk": math.log(mean_t / mean_c),
        "decisions": float(len(treated)),
    }


def true_policy_value(
    rows: Sequence[Mapping[str, Any]],
    ids: Sequence[int],
    chances: Mapping[int, Mapping[str, float]],
    target: Callable[[Mapping[str, Any]], Mapping[str, float]],
) -> float:
    values = []
    for row, decision_id in zip(rows, ids, strict=True):
        if not row["available"] or row["outcome"] is None or decision_id not in chances:
            continue
        wanted = target(row)
        values.append(sum(p * chances[decision_id][o] for o, p in wanted.items() if p > 0))
    return sum(values) / len(values) if values else math.nan
