"""Synthetic micro-randomised trials with known true effects, for testing the estimators.

The model (all times in hours of a person's local day):

* Person i reaches out (an "ME" contact) as a Poisson process with daily rate
  ``r_i = -log(1 - q_i)``, so that ``q_i ~ Beta(2, 2.5)`` is their chance of reaching out on
  a day without nudges. A share ``ρ_i ~ U(0.4, 0.8)`` of the rate falls in their own risky
  hours ``[h_i, h_i + 3)``, ``h_i`` uniform on 17..22; the rest is spread evenly over the day.
* Decisions are at fixed hours every day (``decision_hours``). Each is available with
  probability ``availability``; when available, a nudge is sent with probability
  ``P(nudge) ~ U(nudge_probability)`` (drawn afresh at each decision) and its kind uniformly
  among ``options``; otherwise "none".
* A nudge of kind k protects for ``protection_hours`` (at most the gap to the next decision):
  the rate is multiplied by ``exp(-γ_k(d))`` there, ``γ_k(d) = γ_k · 2^(-d/half_life)`` on
  day d since signup (habituation). The kind ``risky_hour`` protects from one hour before
  the person's risky hours when those start before the next decision, and from the decision
  otherwise; the other kinds protect from the decision.
* The outcome of a decision is 1 when the person makes no ME contact in the next 24 hours.

Because protection never outlasts the gap to the next decision, the 24 hours after decision
t split into the D gaps between decisions, each touched only by its own decision's action.
So ``P(Y_t = 1 | A_t = a) = S_a(t) · Π_{m=1}^{D-1} E[S(t+m)]`` exactly, with
``S_a = exp(-Λ_gap + Λ_protected,a (1 - e^{-γ_a}))`` and the expectation over the next
decisions' randomisation (linear in the probabilities, so their mean is exact). The true
effect of option k against none over available decisions is ``mean(P_k - P_none)`` on the
risk-difference scale and ``log(mean P_k / mean P_none)`` on the log relative risk scale —
what WCLS and the log-relative-risk estimator estimate with a constant reference probability
(both estimating equations reduce to these for an intercept-only effect model).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray

from service.learning.decision_log import DecisionLog

FloatArray = NDArray[np.float64]
NONE = "none"
RISKY_HOUR = "risky_hour"
RISKY_SPAN = 3.0


def _default_effects() -> dict[str, float]:
    return {"restraint": 1.0, "activity": 0.5, "patience": 0.0, RISKY_HOUR: 1.5}


@dataclass(frozen=True)
class SyntheticDesign:
    people: int = 60
    days: int = 28
    decision_hours: tuple[float, ...] = (9.0, 14.0, 19.0)
    effects: Mapping[str, float] = field(default_factory=_default_effects)
    protection_hours: float = 5.0
    habituation_half_life_days: float | None = 60.0
    availability: float = 0.8
    nudge_probability: tuple[float, float] = (0.2, 0.8)

    @property
    def options(self) -> tuple[str, ...]:
        return tuple(self.effects)


@dataclass(frozen=True, eq=False)
class SyntheticTrial:
    """One row per decision, ordered by person, day, decision."""

    design: SyntheticDesign
    person: NDArray[np.int64]
    day: NDArray[np.int64]
    slot: NDArray[np.int64]
    available: NDArray[np.bool_]
    chosen: NDArray[np.object_]
    probabilities: dict[str, FloatArray]
    outcome: FloatArray
    outcome_probability: dict[str, FloatArray]  # exact P(Y = 1 | A = option), per row
    me_count: NDArray[np.int64]  # ME contacts in the gap after each decision

    def rows(self, start: datetime | None = None) -> list[dict[str, Any]]:
        """The decision log as ``steady decisions --json`` rows with ``outcome`` added."""
        origin = start or datetime(2025, 1, 6, tzinfo=UTC)
        hours = np.asarray(self.design.decision_hours)[self.slot] + 24.0 * self.day
        names = (NONE, *self.design.options)
        out: list[dict[str, Any]] = []
        for i in range(len(self.person)):
            available = bool(self.available[i])
            chosen = str(self.chosen[i])
            options = list(names) if available else [NONE]
            out.append(
                {
                    "at": (origin + timedelta(hours=float(hours[i]))).isoformat(),
                    "subscriber_id": f"sim-{int(self.person[i])}",
                    "available": available,
                    "unavailable_reason": None if available else "window",
                    "options": options,
                    "probabilities": {o: float(self.probabilities[o][i]) for o in options},
                    "chosen": chosen,
                    "policy": "synthetic-v1",
                    "message_id": None if chosen == NONE else f"sim-message-{i}",
                    "outcome": int(self.outcome[i]),
                }
            )
        return out

    def log(self, start: datetime | None = None) -> DecisionLog:
        """The same decisions as ``rows()``, parsed, without building a dict per row."""
        origin = (start or datetime(2025, 1, 6, tzinfo=UTC)).timestamp()
        hours = np.asarray(self.design.decision_hours)[self.slot] + 24.0 * self.day
        names = (NONE, *self.design.options)
        available = self.available
        return DecisionLog(
            person=np.asarray([f"sim-{i}" for i in range(self.design.people)], dtype=object)[
                self.person
            ],
            person_code=self.person.astype(np.intp),
            at=origin + 3600.0 * hours,
            days_since_signup=(hours - hours.min()) / 24.0,
            available=available,
            chosen=self.chosen.astype(str),
            options=names,
            probabilities=np.column_stack([self.probabilities[o] * available for o in names]),
            outcome=self.outcome,
        )

    def policy_value(self, target: Mapping[str, FloatArray]) -> float:
        """Exact expected outcome at available decisions if the target policy chose there:
        ``target[option]`` is each row's probability of choosing it."""
        value = sum(target[o] * self.outcome_probability[o] for o in target)
        return float(np.mean(np.asarray(value)[self.available]))


def simulate(design: SyntheticDesign, seed: int) -> SyntheticTrial:
    rng = np.random.default_rng(seed)
    n, days, slots = design.people, design.days, len(design.decision_hours)
    gap_hazard, protected = _person_hazards(design, rng, n)
    shape = (n, days + 1, slots)  # one extra day so the last day's outcomes are observed
    available = rng.random(shape) < design.availability
    lo, hi = design.nudge_probability
    nudge = rng.uniform(lo, hi, shape) * available
    options = design.options
    probabilities = {NONE: 1 - nudge, **{o: nudge / len(options) for o in options}}
    draw = rng.random(shape)
    kind = np.minimum(draw / np.where(nudge > 0, nudge, 1) * len(options), len(options) - 1)
    action = np.where(draw < nudge, kind.astype(int) + 1, 0)  # 0 = none, k + 1 = options[k]
    survival = _gap_survival(design, gap_hazard, protected, days + 1)
    taken = np.take_along_axis(survival, action[..., None], axis=-1)[..., 0]
    me_count = rng.poisson(-np.log(taken))
    outcome = _next_day((me_count == 0).astype(float), slots)
    expected = (1 - design.availability) * survival[..., 0] + design.availability * (
        (1 - (lo + hi) / 2) * survival[..., 0] + (lo + hi) / 2 * survival[..., 1:].mean(axis=-1)
    )
    later = _next_day(expected, slots) / expected
    chance = {name: survival[..., j] * later for j, name in enumerate((NONE, *options))}
    keep = (slice(None), slice(0, days), slice(None))
    person, day, slot = (a.ravel() for a in np.indices((n, days, slots)))
    return SyntheticTrial(
        design=design,
        person=person.astype(np.int64),
        day=day.astype(np.int64),
        slot=slot.astype(np.int64),
        available=available[keep].ravel(),
        chosen=np.asarray((NONE, *options), dtype=object)[action[keep].ravel()],
        probabilities={o: p[keep].ravel() for o, p in probabilities.items()},
        outcome=outcome[keep].ravel().astype(float),
        outcome_probability={o: c[keep].ravel() for o, c in chance.items()},
        me_count=me_count[keep].ravel().astype(np.int64),
    )


def true_effects(
    design: SyntheticDesign,
    *,
    people: int = 20_000,
    seed: int = 2024,
    days: tuple[int, int] | None = None,
) -> dict[str, tuple[float, float]]:
    """Option -> (risk difference, log relative risk), the population values.

    Exact for the people drawn, and ``people`` large makes it the population value. Averaged
    over all decisions: P(Y | A) does not depend on whether that decision was available, so
    this is the value over available ones with less noise. ``days`` (from, to) restricts to
    days since signup in ``[from, to)``.
    """
    trial = simulate(replace(design, people=people), seed)
    mask = np.ones(len(trial.day), dtype=bool)
    if days is not None:
        mask = (trial.day >= days[0]) & (trial.day < days[1])
    base = trial.outcome_probability[NONE][mask]
    out: dict[str, tuple[float, float]] = {}
    for option in design.options:
        treated = trial.outcome_probability[option][mask]
        out[option] = (
            float(np.mean(treated - base)),
            float(np.log(treated.mean() / base.mean())),
        )
    return out


def _person_hazards(
    design: SyntheticDesign, rng: np.random.Generator, n: int
) -> tuple[FloatArray, FloatArray]:
    """Expected ME counts per gap (n, D) and in each option's protected span (n, D, K)."""
    rate = -np.log1p(-rng.beta(2.0, 2.5, n))
    share = rng.uniform(0.4, 0.8, n)
    risky = rng.integers(17, 23, n).astype(float)
    starts = np.asarray(design.decision_hours, dtype=float)
    ends = np.append(starts[1:], starts[0] + 24.0)
    if design.protection_hours > np.min(ends - starts):
        raise ValueError("protection must end before the next decision")

    def hazard(s: FloatArray, e: FloatArray) -> FloatArray:
        # ∫ rate·((1-ρ)/24 + ρ/3·1[risky]) over [s, e), the risky span repeating daily.
        overlap = np.zeros_like(s)
        for k in (-1, 0, 1):
            begin = risky[:, None] + 24.0 * k
            overlap += np.clip(np.minimum(e, begin + RISKY_SPAN) - np.maximum(s, begin), 0, None)
        even = (1 - share[:, None]) * (e - s) / 24
        return np.asarray(rate[:, None] * (even + share[:, None] * overlap / RISKY_SPAN))

    shape = (n, len(starts))
    s, e = np.broadcast_to(starts, shape), np.broadcast_to(ends, shape)
    gap = hazard(s, e)
    spans = []
    for option in design.options:
        start = s
        if option == RISKY_HOUR:
            # Risky hours starting inside this gap (today or after midnight).
            lead = np.where(risky[:, None] < s, risky[:, None] + 24, risky[:, None]) - 1
            start = np.where((lead >= s) & (lead < e), lead, s)
        spans.append(hazard(start, np.minimum(start + design.protection_hours, e)))
    return gap, np.stack(spans, axis=-1)


def _gap_survival(
    design: SyntheticDesign, gap: FloatArray, protected: FloatArray, days: int
) -> FloatArray:
    """P(no ME in the gap after a decision) by action: (n, days, D, 1 + K), none first."""
    day = np.arange(days, dtype=float)
    fade = (
        np.ones(days)
        if not design.habituation_half_life_days
        else 2.0 ** (-day / design.habituation_half_life_days)
    )
    gamma = np.asarray(list(design.effects.values()))[None, :] * fade[:, None]  # (days, K)
    relief = protected[:, None, :, :] * (1 - np.exp(-gamma))[None, :, None, :]
    relief = np.concatenate([np.zeros((*relief.shape[:-1], 1)), relief], axis=-1)
    return np.asarray(np.exp(-gap[:, None, :, None] + relief), dtype=float)


def _next_day(values: FloatArray, slots: int) -> FloatArray:
    """Each decision's value times those of the next D-1 decisions (the following 24 h).

    Past the simulated days the product is cut short; simulate() drops that last day.
    """
    flat = values.reshape(values.shape[0], -1)
    out = flat.copy()
    for m in range(1, slots):
        shifted = np.ones_like(flat)
        shifted[:, :-m] = flat[:, m:]
        out *= shifted
    return out.reshape(values.shape)
