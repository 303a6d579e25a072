"""The risky-hours model: its likelihood against scipy's Dirichlet-multinomial, the
empirical-Bayes fit recovering a known concentration, and shrinkage of the posterior."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest
from scipy.special import gammaln
from scipy.stats import dirichlet_multinomial

from service.learning.risky_hours import (
    BINS,
    Prior,
    bin_of,
    counts,
    fit_prior,
    hourly_rate,
    log_marginal_likelihood,
)


def _draw(
    rng: np.random.Generator, mean: np.ndarray, alpha: float, sizes: np.ndarray
) -> np.ndarray:
    shares = rng.dirichlet(alpha * mean, len(sizes))
    return np.stack([rng.multinomial(n, p) for n, p in zip(sizes, shares, strict=True)])


def test_log_likelihood_matches_scipy_dirichlet_multinomial_up_to_the_coefficient() -> None:
    rng = np.random.default_rng(4)
    mean = rng.dirichlet(np.ones(BINS))
    matrix = _draw(rng, mean, 7.0, rng.integers(1, 30, 25))
    reference = sum(
        dirichlet_multinomial.logpmf(row, 7.0 * mean, row.sum())
        # scipy includes the multinomial coefficient, which does not depend on α or m
        - (gammaln(row.sum() + 1) - gammaln(row + 1).sum())
        for row in matrix
    )
    assert log_marginal_likelihood(matrix, mean, 7.0) == pytest.approx(reference, rel=1e-10)


def test_fit_recovers_the_concentration_of_simulated_people() -> None:
    rng = np.random.default_rng(11)
    evening = np.exp(-0.5 * ((np.arange(BINS) % 24 - 21) / 2.0) ** 2) + 0.05
    mean = evening / evening.sum()
    for alpha in (3.0, 30.0):
        fitted = fit_prior(_draw(rng, mean, alpha, rng.integers(5, 40, 600)))
        assert fitted.concentration == pytest.approx(alpha, rel=0.25)
        assert np.abs(np.asarray(fitted.mean) - mean).max() < 0.025


def test_one_contact_each_says_nothing_about_how_alike_people_are() -> None:
    matrix = np.zeros((5, BINS))
    matrix[np.arange(5), [3, 9, 20, 20, 40]] = 1
    fitted = fit_prior(matrix)
    assert fitted.concentration == Prior.flat().concentration
    assert fitted.people == 5
    assert fitted.contacts == 5


def test_posterior_is_everyones_pattern_when_thin_and_their_own_when_rich() -> None:
    mean = tuple(1 / BINS for _ in range(BINS))
    prior = Prior(mean=mean, concentration=10.0)
    own = [0.0] * BINS
    own[22] = 2
    thin = prior.posterior(own)
    assert thin[22] == pytest.approx((2 + 10 / BINS) / 12)
    own[22] = 400
    rich = prior.posterior(own)
    assert rich[22] > 0.95 > thin[22]
    assert sum(rich) == pytest.approx(1.0)


def test_bins_split_weekday_and_weekend_hours_and_rates_per_day_kind() -> None:
    monday, saturday = datetime(2026, 4, 6, 21, 30), datetime(2026, 4, 11, 21, 30)
    assert bin_of(monday) == 21
    assert bin_of(saturday) == 45
    shares = counts([monday, monday, saturday])
    assert shares[21] == 2
    assert shares[45] == 1
    flat = [1 / BINS] * BINS
    # A weekday bin stands for five days a week, a weekend bin for two.
    assert hourly_rate(flat, monday) * 5 == pytest.approx(hourly_rate(flat, saturday) * 2)


def test_bad_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        fit_prior(-np.ones((2, BINS)))
