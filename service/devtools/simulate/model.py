"""The simulated people of `steady simulate`: when they reach out, and how nudges change it.

The model is ``service.learning.synthetic``'s, on the real planner's decision points:

* Person i reaches out (texts ME) as a Poisson process with daily rate
  ``r_i = -log(1 - q_i)``, ``q_i ~ Beta(2, 2.5)`` (their chance of reaching out on a day
  without nudges). A share ``ρ_i ~ U(0.4, 0.8)`` of it falls in their own risky hours
  ``[h_i, h_i + 3)`` local time, ``h_i`` uniform on 17..22; the rest is spread evenly.
* A nudge of kind k sent at s protects from s for ``PROTECTION`` hours, but never past
  the next decision point: the rate is multiplied by ``exp(-γ_k(d))`` there, with
  ``γ_k(d) = γ_k 2^(-d / HALF_LIFE)`` on day d since signup (people get used to nudges).
  The risky-hour reminder is a restraint message (the same γ): only its timing differs,
  set by the real planner from the person's own ME log.
* Every so often (on average every ``DONE_EVERY_DAYS``) a person texts "DONE walk" late
  in the evening, after the sending window: they stay engaged (no quiet-spell check-in)
  and no scheduled nudge is ever cancelled by it.

Because protection ends at the next point, the 24 hours after a point split into the
three gaps up to the same point the next day, each touched only by its own decision's
nudge; given no contact of their own in a gap, nothing in it changes what is decided
at the next point. So ``P(Y_t = 1 | A_t = a) = S_a(t) · Π_m E_π[S(t + m)]``, the product
over the next two points of their survival averaged over their logged probabilities
(``service.devtools.simulate.truth``). Local time here is UTC plus the zone's offset on
the first day: the simulated weeks avoid daylight-saving changes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

RISKY_SPAN = 3.0  # hours
PROTECTION = 2.5  # hours, cut at the next decision point
HALF_LIFE_DAYS = 60.0
DONE_EVERY_DAYS = 5.0
HOUR = 3600.0


def default_effects() -> dict[str, float]:
    """γ_k by the option names of ``service.pacing.experiment`` (and v1's fixed kinds)."""
    return {
        "restraint": 1.5,
        "restraint_risky_hour": 1.5,
        "activity": 0.7,
        "patience": 0.0,
    }


@dataclass(frozen=True)
class Person:
    index: int
    rate: float  # expected contacts a day
    share: float  # ρ: the share of them in the risky hours
    risky: float  # h: local hour the risky span starts
    offset_hours: float  # local = UTC + offset (constant over the simulated weeks)

    def hazard(self, start: float, end: float) -> float:
        """Expected contacts between two UTC times in hours since the epoch."""
        if end <= start:
            return 0.0
        s, e = start + self.offset_hours, end + self.offset_hours
        overlap = 0.0
        first = math.floor(s / 24) - 1
        for day in range(first, math.floor(e / 24) + 1):
            begin = 24.0 * day + self.risky
            overlap += max(0.0, min(e, begin + RISKY_SPAN) - max(s, begin))
        even = (1 - self.share) * (e - s) / 24
        return self.rate * (even + self.share * overlap / RISKY_SPAN)

    def rate_at(self, at: float) -> float:
        """Contacts per hour at a UTC time in hours since the epoch."""
        local = (at + self.offset_hours) % 24
        risky = (local - self.risky) % 24 < RISKY_SPAN
        return float(
            self.rate * ((1 - self.share) / 24 + (self.share / RISKY_SPAN if risky else 0))
        )


@dataclass(frozen=True)
class World:
    people: tuple[Person, ...]
    effects: Mapping[str, float] = field(default_factory=default_effects)
    protection: float = PROTECTION
    half_life_days: float = HALF_LIFE_DAYS

    def gamma(self, option: str, days_since_signup: float) -> float:
        base = self.effects.get(option, 0.0)
        return float(base * 2.0 ** (-days_since_signup / self.half_life_days))

    def survival(
        self,
        person: Person,
        gap: tuple[float, float],
        option: str,
        sent: float | None,
        days_since_signup: float,
    ) -> float:
        """P(no contact of their own in the gap | the option, its nudge sent at ``sent``)."""
        start, end = gap
        total = person.hazard(start, end)
        if sent is None:
            return math.exp(-total)
        protected = person.hazard(max(sent, start), min(sent + self.protection, end))
        relief = protected * (1 - math.exp(-self.gamma(option, days_since_signup)))
        return math.exp(-total + relief)

    def contacts(
        self,
        rng: np.random.Generator,
        person: Person,
        gap: tuple[float, float],
        option: str,
        sent: float | None,
        days_since_signup: float,
    ) -> list[float]:
        """Contact times in the gap (UTC hours), by thinning the protected process."""
        start, end = gap
        peak = person.rate * ((1 - person.share) / 24 + person.share / RISKY_SPAN)
        count = rng.poisson(peak * (end - start))
        times = np.sort(rng.uniform(start, end, count))
        keep = []
        damp = math.exp(-self.gamma(option, days_since_signup)) if sent is not None else 1.0
        for t in times:
            rate = person.rate_at(float(t))
            if sent is not None and sent <= t < min(sent + self.protection, end):
                rate *= damp
            if rng.random() < rate / peak:
                keep.append(float(t))
        return keep


def draw_people(rng: np.random.Generator, offsets: list[float]) -> tuple[Person, ...]:
    """One person per offset (their zone's UTC offset), drawn from the module's model."""
    n = len(offsets)
    q = rng.beta(2.0, 2.5, n)
    share = rng.uniform(0.4, 0.8, n)
    risky = rng.integers(17, 23, n).astype(float)
    return tuple(
        Person(i, float(-math.log1p(-q[i])), float(share[i]), float(risky[i]), offsets[i])
        for i in range(n)
    )
