"""Checked arrays for the excursion-effect estimators: which decisions enter, with what weight.

The weight of a decision is ``p̃^A (1-p̃)^(1-A) / (p^A (1-p)^(1-A))`` for a binary
randomisation, and ``p̃/π_k`` or ``(1-p̃)/π_none`` for option k against none in a
multi-option one (estimators.py explains why). Unavailable decisions and those with weight 0
do not enter; people are counted among those that do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
Reference = float | ArrayLike | Callable[[FloatArray], ArrayLike]
INTERCEPT = "(Intercept)"


class EstimationError(ValueError):
    """The data cannot give an estimate (bad input, too few people, no variation)."""


@dataclass(frozen=True)
class Covariates:
    """Moderator and control columns, each without the intercept (always added)."""

    moderators: ArrayLike | None = None
    controls: ArrayLike | None = None
    moderator_names: Sequence[str] | None = None
    control_names: Sequence[str] | None = None


@dataclass(frozen=True)
class Rows:
    """The decisions that enter the estimating equation (available, weight > 0)."""

    y: FloatArray
    a: FloatArray
    ref: FloatArray
    weight: FloatArray
    cluster: NDArray[np.intp]
    people: int
    effect_design: FloatArray
    control_design: FloatArray
    effect_names: tuple[str, ...]
    control_names: tuple[str, ...]


def binary_rows(
    outcome: ArrayLike,
    treatment: ArrayLike,
    probability: ArrayLike | float,
    person: ArrayLike,
    available: ArrayLike | None,
    reference_probability: Reference,
    covariates: Covariates,
) -> Rows:
    a = np.asarray(treatment, dtype=float)
    n = len(a)
    if not np.isin(a, (0.0, 1.0)).all():
        raise EstimationError("treatment must be 0 or 1")
    keep = indicator(available, n, "available") == 1
    p = per_row(probability, n, "probability")
    if ((p[keep] <= 0) | (p[keep] >= 1)).any():
        raise EstimationError("randomisation probability must be strictly between 0 and 1")
    designs = _designs(covariates, n)
    ref = _reference(reference_probability, designs[0][0], keep)
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(a == 1, ref / p, (1 - ref) / (1 - p))
    return _subset(outcome, a, ref, weight, person, keep, designs)


def option_rows(
    option: str,
    none: str,
    chosen: ArrayLike,
    probabilities: Mapping[str, ArrayLike],
    outcome: ArrayLike,
    person: ArrayLike,
    available: ArrayLike | None,
    reference_probability: Reference | None,
    covariates: Covariates,
) -> Rows:
    picked = np.asarray(chosen)
    n = len(picked)
    if option not in probabilities or none not in probabilities:
        raise EstimationError(f"no probabilities for {option!r} and {none!r}")
    p_option = per_row(probabilities[option], n, f"probability of {option!r}")
    p_none = per_row(probabilities[none], n, f"probability of {none!r}")
    offered = (indicator(available, n, "available") == 1) & (p_option > 0) & (p_none > 0)
    if not offered.any():
        raise EstimationError(f"no available decision offered both {option!r} and {none!r}")
    if ((p_option[offered] >= 1) | (p_none[offered] >= 1)).any():
        raise EstimationError("a probability of 1 leaves nothing randomised")
    a = (picked == option).astype(float)
    keep = offered & ((a == 1) | (picked == none))
    designs = _designs(covariates, n)
    if reference_probability is None:
        share = p_option[offered] / (p_option[offered] + p_none[offered])
        reference_probability = float(share.mean())
    ref = _reference(reference_probability, designs[0][0], keep)
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(a == 1, ref / p_option, (1 - ref) / p_none)
    return _subset(outcome, a, ref, weight, person, keep, designs)


Design = tuple[FloatArray, tuple[str, ...]]


def _subset(
    outcome: ArrayLike,
    a: FloatArray,
    ref: FloatArray,
    weight: FloatArray,
    person: ArrayLike,
    keep: NDArray[np.bool_],
    designs: tuple[Design, Design],
) -> Rows:
    n = len(a)
    y = per_row(outcome, n, "outcome")
    ids = np.asarray(person)
    if ids.shape != (n,):
        raise EstimationError(f"person has shape {ids.shape}, expected ({n},)")
    keep = keep & (weight > 0)
    if not np.isfinite(y[keep]).all():
        raise EstimationError("outcome is missing at an available decision")
    _, cluster = np.unique(ids[keep], return_inverse=True)
    people = int(cluster.max()) + 1 if keep.any() else 0
    (x, x_names), (z, z_names) = designs
    terms = x.shape[1] + z.shape[1]
    if people <= terms:
        raise EstimationError(f"{people} people is too few for {terms} terms")
    return Rows(
        y=y[keep],
        a=a[keep],
        ref=ref[keep],
        weight=weight[keep],
        cluster=cluster.astype(np.intp),
        people=people,
        effect_design=x[keep],
        control_design=z[keep],
        effect_names=x_names,
        control_names=z_names,
    )


def _designs(covariates: Covariates, n: int) -> tuple[Design, Design]:
    c = covariates
    return (
        _with_intercept(c.moderators, c.moderator_names, n, "moderator"),
        _with_intercept(c.controls, c.control_names, n, "control"),
    )


def _with_intercept(
    columns: ArrayLike | None, names: Sequence[str] | None, n: int, what: str
) -> Design:
    if columns is None:
        return np.ones((n, 1)), (INTERCEPT,)
    m = np.asarray(columns, dtype=float)
    m = m[:, None] if m.ndim == 1 else m
    if m.ndim != 2 or m.shape[0] != n:
        raise EstimationError(f"{what} columns have shape {m.shape}, expected ({n}, k)")
    if not np.isfinite(m).all():
        raise EstimationError(f"{what} columns have missing values")
    default = tuple(f"{what}{j + 1}" for j in range(m.shape[1]))
    labels = default if names is None else tuple(names)
    if len(labels) != m.shape[1]:
        raise EstimationError(f"{len(labels)} {what} names for {m.shape[1]} columns")
    return np.column_stack([np.ones(n), m]), (INTERCEPT, *labels)


def _reference(
    reference: Reference, effect_design: FloatArray, keep: NDArray[np.bool_]
) -> FloatArray:
    """p̃ per decision: a constant, an array, or a function of the moderator columns."""
    if callable(reference):
        reference = reference(effect_design[:, 1:])
    ref = per_row(reference, effect_design.shape[0], "reference probability")
    if ((ref[keep] <= 0) | (ref[keep] >= 1)).any():
        raise EstimationError("reference probability must be strictly between 0 and 1")
    return ref


def per_row(values: ArrayLike | float, n: int, what: str) -> FloatArray:
    array = np.asarray(values, dtype=float)
    if array.ndim == 0:
        return np.full(n, float(array))
    if array.shape != (n,):
        raise EstimationError(f"{what} has shape {array.shape}, expected ({n},)")
    return array


def indicator(values: ArrayLike | None, n: int, what: str) -> FloatArray:
    if values is None:
        return np.ones(n)
    array = per_row(values, n, what)
    if not np.isin(array, (0.0, 1.0)).all():
        raise EstimationError(f"{what} must be 0 or 1")
    return array
