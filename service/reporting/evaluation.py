"""`steady evaluate` and `/admin/evaluation`: what the decision log says about each nudge.

The effects (``service.learning.evaluate``) of each option against none, on both scales,
overall and by days since signup, from the database (``evaluate_database``) or from an
exported log (``evaluate_rows``); and, for a candidate policy named in ``POLICIES``, the
outcome it would have had (``service.learning.offpolicy``: IPW and doubly robust), to
check a new pacing policy on the logged data before it is switched on.

A candidate changes only what the experiment randomised: at a decision that was not
randomised (v1's own rules, an opted-out person, a probability of 1) it chooses what was
logged, since it would not apply there either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from service.learning.decision_log import DecisionLog, parse_rows
from service.learning.evaluate import evaluate_log
from service.learning.offpolicy import PolicyError, policy_value
from service.reporting.decision_log import Record, iter_records
from service.settings import Settings
from service.storage.db import session_factory

Target = Callable[[Mapping[str, Any]], dict[str, float]]
NONE = "none"
RESTRAINT = "restraint"
RISKY_HOUR = "restraint_risky_hour"
LOW, HIGH = 0.2, 0.8

__all__ = [
    "POLICIES",
    "evaluate",
    "evaluate_database",
    "read_url",
    "report_sessions",
]


def read_url(settings: Settings) -> str:
    """The replica for reports when one is set (STEADY_DATABASE_REPLICA_URL), else the primary.

    Read by attribute, so this works before and after that setting lands (issue 13).
    """
    replica = getattr(settings, "database_replica_url", None)
    return str(replica) if replica else settings.database_url


def report_sessions(settings: Settings, primary: sessionmaker[Session]) -> sessionmaker[Session]:
    """Sessions on the replica when one is set, else ``primary``."""
    url = read_url(settings)
    return primary if url == settings.database_url else session_factory(url)


def _logged(row: Mapping[str, Any]) -> dict[str, float]:
    probabilities = row["probabilities"]
    if isinstance(probabilities, Mapping):
        return {str(k): float(v) for k, v in probabilities.items()}
    return {str(o): float(p) for o, p in zip(row["options"], probabilities, strict=True)}


def _randomised(logged: Mapping[str, float]) -> bool:
    return sum(1 for p in logged.values() if p > 0) > 1


def _candidate(change: Callable[[dict[str, float]], dict[str, float]]) -> Target:
    def target(row: Mapping[str, Any]) -> dict[str, float]:
        logged = _logged(row)
        return change(logged) if _randomised(logged) else logged

    return target


def _move(source: str, to: str) -> Callable[[dict[str, float]], dict[str, float]]:
    def change(p: dict[str, float]) -> dict[str, float]:
        if source not in p or to not in p:
            return p
        return {**p, to: p[to] + p[source], source: 0.0}

    return change


def _nudge_rate(rate: float) -> Callable[[dict[str, float]], dict[str, float]]:
    def change(p: dict[str, float]) -> dict[str, float]:
        kinds = [o for o in p if o != NONE]
        return {NONE: 1 - rate, **{o: rate / len(kinds) for o in kinds}}

    return change


def _no_nudges(p: dict[str, float]) -> dict[str, float]:
    return {o: 1.0 if o == NONE else 0.0 for o in p}


# Candidate policies by name (`steady evaluate --policy NAME`).
POLICIES: dict[str, Target] = {
    "risky_hour_timing": _candidate(_move(RESTRAINT, RISKY_HOUR)),
    "v1_timing": _candidate(_move(RISKY_HOUR, RESTRAINT)),
    "more_nudges": _candidate(_nudge_rate(HIGH)),
    "fewer_nudges": _candidate(_nudge_rate(LOW)),
    "no_nudges": _candidate(_no_nudges),
}


def evaluate(rows: Sequence[Mapping[str, Any]], policies: Sequence[str] = ()) -> dict[str, Any]:
    """The effects (as `steady evaluate --json` prints them) and each named policy's value.

    Raises ``DecisionLogError`` naming the row for a malformed log, ``KeyError`` for an
    unknown policy name.
    """
    return _evaluate(parse_rows(rows), policies)


def _evaluate(log: DecisionLog, policies: Sequence[str]) -> dict[str, Any]:
    for name in policies:
        if name not in POLICIES:
            raise KeyError(name)
    result = evaluate_log(log).to_dict()
    if policies:
        values: dict[str, Any] = {}
        for name in policies:
            try:
                values[name] = policy_value(log, POLICIES[name]).to_dict()
            except PolicyError as error:
                values[name] = {"error": str(error)}
        result["policies"] = values
    return result


def evaluate_database(
    sessions: sessionmaker[Session], now: datetime, policies: Sequence[str] = ()
) -> dict[str, Any]:
    """Evaluate the decision log in the database (pass the replica's sessions, if any)."""
    with sessions() as session:
        records = list(iter_records(session, now))
    return _evaluate(log_of(records, with_rows=bool(policies)), policies)


def log_of(records: Sequence[Record], *, with_rows: bool = False) -> DecisionLog:
    """The arrays the estimators take, straight from the database's rows.

    What `parse_rows` builds from an exported file, without its checks: these rows were
    written by the planner, and checking 180,000 of them one by one took longer than the
    estimation (1,000 people x 60 days). Like it, options and probabilities count only at
    available decisions. ``with_rows`` keeps each row as a mapping, for the candidate
    policies of `--policy`, which read them.
    """
    n = len(records)
    codes: dict[str, int] = {NONE: 0}
    cells: tuple[list[int], list[int], list[float]] = ([], [], [])
    chosen = [NONE] * n
    for i, record in enumerate(records):
        if not record.available:
            continue
        chosen[i] = record.chosen
        for option, probability in record.probabilities.items():
            cells[0].append(i)
            cells[1].append(codes.setdefault(option, len(codes)))
            cells[2].append(probability)
    probabilities = np.zeros((n, len(codes)))
    probabilities[cells[0], cells[1]] = cells[2]
    person = np.asarray([r.subscriber_id for r in records], dtype=object)
    _, code = np.unique(np.asarray([r.subscriber_id for r in records]), return_inverse=True)
    return DecisionLog(
        person=person,
        person_code=code.astype(np.intp),
        at=np.asarray([r.at.timestamp() for r in records]),
        days_since_signup=np.asarray([r.days_since_signup for r in records], dtype=float),
        available=np.asarray([r.available for r in records], dtype=bool),
        chosen=np.asarray(chosen, dtype=str),
        options=tuple(codes),
        probabilities=probabilities,
        outcome=np.asarray(
            [np.nan if r.outcome is None else r.outcome for r in records], dtype=float
        ),
        rows=[r.row() for r in records] if with_rows else (),
    )
