"""The decision log with outcomes (INTERFACE §4 ``steady evaluate --input``) as arrays.

A row per decision: ``at`` (ISO 8601; without an offset it is UTC), ``subscriber_id``,
``available``, ``unavailable_reason``, ``options`` (a list containing ``none``),
``probabilities`` (option -> probability, or a list aligned with ``options``), ``chosen``,
``policy``, ``message_id`` and ``outcome`` (1, 0, or null while not yet known). An optional
``days_since_signup`` is used when present; otherwise it is counted from the subscriber's
first decision in the log. Only available decisions with a known outcome are checked
strictly: their probabilities must lie in [0, 1], sum to 1, and give the chosen option a
positive probability.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
NONE = "none"
DAY_SECONDS = 86_400.0


class DecisionLogError(ValueError):
    """A row of the log is malformed; the message names the row and the field."""


@dataclass(frozen=True, eq=False)
class DecisionLog:
    person: NDArray[np.object_]
    person_code: NDArray[np.intp]  # 0.. in order of subscriber_id, for fast grouping
    at: FloatArray  # seconds since the epoch
    days_since_signup: FloatArray
    available: NDArray[np.bool_]
    chosen: NDArray[np.str_]
    options: tuple[str, ...]  # every option seen, "none" first
    probabilities: FloatArray  # (rows, options), 0 where an option was not offered
    outcome: FloatArray  # nan where unknown
    rows: Sequence[Mapping[str, Any]] = ()

    def probability(self, option: str) -> FloatArray:
        return np.asarray(self.probabilities[:, self.options.index(option)])

    def probability_map(self) -> dict[str, FloatArray]:
        return {option: self.probability(option) for option in self.options}

    @property
    def usable(self) -> NDArray[np.bool_]:
        """Available decisions whose outcome is known."""
        return np.asarray(self.available & ~np.isnan(self.outcome))


def parse_rows(rows: Iterable[Mapping[str, Any]]) -> DecisionLog:
    items = rows if isinstance(rows, Sequence) else list(rows)
    n = len(items)
    person: list[str] = [""] * n
    chosen: list[str] = [NONE] * n
    at = np.empty(n)
    days = np.full(n, np.nan)
    available = np.zeros(n, dtype=bool)
    outcome = np.full(n, np.nan)
    codes: dict[str, int] = {NONE: 0}
    cells: tuple[list[int], list[int], list[float]] = ([], [], [])
    for i, row in enumerate(items):
        if not isinstance(row, Mapping):
            raise DecisionLogError(f"row {i}: not an object")
        try:
            person[i] = str(row["subscriber_id"])
            at[i] = _timestamp(row["at"], i)
            available[i] = _flag(row["available"], i, "available")
            outcome[i] = _outcome(row["outcome"], i)
            offered = _offered(row["options"], row["probabilities"], i)
            picked = row["chosen"]
        except KeyError as missing:
            raise DecisionLogError(f"row {i}: missing {missing.args[0]!r}") from None
        if "days_since_signup" in row and row["days_since_signup"] is not None:
            days[i] = _number(row["days_since_signup"], i, "days_since_signup")
        if not available[i]:
            continue
        if isinstance(picked, str):
            chosen[i] = picked
        if not math.isnan(outcome[i]):
            _check_randomisation(offered, chosen[i], i)
        for option, probability in offered.items():
            cells[0].append(i)
            cells[1].append(codes.setdefault(option, len(codes)))
            cells[2].append(probability)
    probabilities = np.zeros((n, len(codes)))
    probabilities[cells[0], cells[1]] = cells[2]
    ids = np.asarray(person, dtype=object)
    _, code = np.unique(ids, return_inverse=True)
    return DecisionLog(
        person=ids,
        person_code=code.astype(np.intp),
        at=at,
        days_since_signup=_fill_days(days, code.astype(np.intp), at),
        available=available,
        chosen=np.asarray(chosen, dtype=str),
        options=tuple(codes),
        probabilities=probabilities,
        outcome=outcome,
        rows=items,
    )


def _fill_days(days: FloatArray, person: NDArray[np.intp], at: FloatArray) -> FloatArray:
    missing = np.isnan(days)
    if not missing.any():
        return days
    first = np.full(int(person.max()) + 1, np.inf)
    np.minimum.at(first, person, at)
    return np.where(missing, (at - first[person]) / DAY_SECONDS, days)


def _offered(options: Any, probabilities: Any, i: int) -> dict[str, float]:
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise DecisionLogError(f"row {i}: options must be a list of names")
    if isinstance(probabilities, Mapping):
        pairs = list(probabilities.items())
    elif isinstance(probabilities, list) and len(probabilities) == len(options):
        pairs = list(zip(options, probabilities, strict=True))
    else:
        raise DecisionLogError(f"row {i}: probabilities must map options, or align with them")
    return {str(o): _number(p, i, "probabilities") for o, p in pairs}


def _check_randomisation(offered: Mapping[str, float], chosen: str, i: int) -> None:
    if NONE not in offered:
        raise DecisionLogError(f"row {i}: options must contain {NONE!r}")
    values = offered.values()
    if any(p < 0 or p > 1 for p in values) or abs(sum(values) - 1) > 1e-6:
        raise DecisionLogError(f"row {i}: probabilities must lie in [0, 1] and sum to 1")
    if offered.get(chosen, 0.0) <= 0:
        raise DecisionLogError(f"row {i}: chosen {chosen!r} had no probability of being chosen")


def _timestamp(value: Any, i: int) -> float:
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise DecisionLogError(f"row {i}: at must be an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _flag(value: Any, i: int, what: str) -> bool:
    if value in (True, False, 0, 1):
        return bool(value)
    raise DecisionLogError(f"row {i}: {what} must be true or false")


def _outcome(value: Any, i: int) -> float:
    if value is None:
        return math.nan
    if value in (True, False, 0, 1):
        return float(value)
    raise DecisionLogError(f"row {i}: outcome must be 1, 0 or null")


def _number(value: Any, i: int, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DecisionLogError(f"row {i}: {what} must be a number")
    return float(value)
