"""When a person tends to reach out: their own pattern, shrunk toward everyone's.

The model. A person's ME contacts fall into 48 bins of local time: the hour of the day,
on a weekday (bins 0-23) or at the weekend (bins 24-47). Person i's shares ``θ_i`` over
the bins are drawn from ``Dirichlet(α m)`` and their counts ``n_i`` are multinomial
given ``θ_i``. ``m`` is everyone's pattern and ``α`` says how alike people are, in
pseudo-contacts: both are estimated from all the logs (empirical Bayes), ``m`` as the
pooled share (with half a contact per bin, so no hour is impossible) and ``α`` by
maximising the Dirichlet-multinomial marginal likelihood of everyone's counts. A
person's predicted pattern is the posterior mean ``(n_i + α m) / (N_i + α)``: everyone's
pattern while they have logged little, more and more their own as their log grows.

``pattern`` turns that into a rate per hour of a given local time (a weekday bin covers
five days a week, a weekend bin two), which ``service.pacing.experiment`` uses to time
the risky-hour reminder.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize, special

BINS = 48
WEEKEND_DAYS = 2
WEEKDAY_DAYS = 5
POOLING_PSEUDO_COUNT = 0.5  # per bin, in the pooled pattern m
DEFAULT_CONCENTRATION = 10.0  # α before anyone has logged two contacts
CONCENTRATION_BOUNDS = (0.5, 2000.0)


def bin_of(local: datetime) -> int:
    """The bin of a local wall time: its hour, plus 24 on Saturday and Sunday."""
    return local.hour + (24 if local.weekday() >= WEEKDAY_DAYS else 0)


def counts(local_times: Iterable[datetime]) -> list[float]:
    """A person's contacts counted by bin."""
    out = [0.0] * BINS
    for moment in local_times:
        out[bin_of(moment)] += 1.0
    return out


@dataclass(frozen=True)
class Prior:
    """Everyone's pattern ``mean`` (48 shares) and how strongly it pulls (``concentration``)."""

    mean: tuple[float, ...]
    concentration: float
    people: int = 0  # people whose logs were used
    contacts: int = 0

    @classmethod
    def flat(cls) -> Prior:
        return cls(mean=(1.0 / BINS,) * BINS, concentration=DEFAULT_CONCENTRATION)

    def posterior(self, person_counts: Sequence[float]) -> tuple[float, ...]:
        """The person's predicted shares: the posterior mean (plain Python: 48 numbers)."""
        total = sum(person_counts) + self.concentration
        return tuple(
            (n + self.concentration * m) / total
            for n, m in zip(person_counts, self.mean, strict=True)
        )


def fit_prior(matrix: ArrayLike) -> Prior:
    """Estimate ``m`` and ``α`` from a (people x 48) matrix of counts."""
    n = np.asarray(matrix, dtype=float).reshape(-1, BINS)
    if (n < 0).any() or not np.isfinite(n).all():
        raise ValueError("counts must be non-negative numbers")
    pooled = n.sum(axis=0) + POOLING_PSEUDO_COUNT
    mean = pooled / pooled.sum()
    informative = n[n.sum(axis=1) >= 2]  # one contact says nothing about how alike people are
    if len(informative) < 2:
        concentration = DEFAULT_CONCENTRATION
    else:
        concentration = _concentration(informative, mean)
    return Prior(
        mean=tuple(float(v) for v in mean),
        concentration=concentration,
        people=int((n.sum(axis=1) > 0).sum()),
        contacts=int(n.sum()),
    )


def log_marginal_likelihood(matrix: ArrayLike, mean: ArrayLike, concentration: float) -> float:
    """Σ_i log P(n_i | α, m) under the Dirichlet-multinomial, without the multinomial
    coefficient (it does not depend on α or m)."""
    return _Counts(np.asarray(matrix, dtype=float).reshape(-1, BINS)).log_likelihood(
        np.asarray(mean, dtype=float), concentration
    )


class _Counts:
    """A (people x 48) count matrix, laid out once for the likelihood's many evaluations.

    ``gammaln(n + a) - gammaln(a)`` is exactly 0 where ``n`` is 0, and most of a person's
    bins are: only the others are worked out, into a matrix of zeros that is then summed
    as the dense one was (so the value is the same to the last bit, in a third the time).
    """

    def __init__(self, n: np.ndarray) -> None:
        self.shape = n.shape
        self.rows, self.bins = np.nonzero(n)
        self.values = n[self.rows, self.bins]
        self.totals = n.sum(axis=1)

    def log_likelihood(self, mean: np.ndarray, concentration: float) -> float:
        a = concentration * mean
        terms = np.zeros(self.shape)
        a_bins = a[self.bins]
        terms[self.rows, self.bins] = special.gammaln(self.values + a_bins) - special.gammaln(
            a_bins
        )
        value = (
            special.gammaln(concentration)
            - special.gammaln(self.totals + concentration)
            + terms.sum(axis=1)
        )
        return float(value.sum())


def _concentration(n: np.ndarray, mean: np.ndarray) -> float:
    low, high = (math.log(b) for b in CONCENTRATION_BOUNDS)
    laid_out = _Counts(n)
    fit = optimize.minimize_scalar(
        lambda log_alpha: -laid_out.log_likelihood(mean, math.exp(log_alpha)),
        bounds=(low, high),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(math.exp(fit.x))


def hourly_rate(shares: Sequence[float], local: datetime) -> float:
    """The share of a week's contacts expected per hour at this local time."""
    b, days = bin_and_days(local)
    return shares[b] / days


def bin_and_days(local: datetime) -> tuple[int, int]:
    """The bin of a local wall time and the days a week it covers: the rate per hour
    there is ``shares[bin] / days`` (what ``hourly_rate`` computes, for callers that
    keep the bins of times they see again)."""
    b = bin_of(local)
    return b, WEEKEND_DAYS if b >= 24 else WEEKDAY_DAYS
