"""What `steady simulate` prints: the truth beside each estimate, with its interval.

* ``effects``: each option against none on both scales, from `steady evaluate`'s own code
  on the exported log, with the true value and whether the 95 % interval covers it;
* ``risky_hour_timing``: the reminder at the person's risky hour against the same reminder
  at the point (v1's timing): the true difference, the estimate (the excursion effect of
  one option against the other), and how much later the risky-hour reminder went;
* ``policies``: each candidate policy of `steady evaluate --policy`, its true value beside
  the IPW and doubly robust estimates from the log.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from service.devtools.simulate.model import PROTECTION
from service.devtools.simulate.run import CADENCE, SMS_CAP, SimulationRun
from service.devtools.simulate.truth import outcome_chances, true_effect, true_policy_value
from service.learning.decision_log import parse_rows
from service.learning.design import EstimationError
from service.learning.estimators import option_versus_none
from service.learning.evaluate import evaluate_log
from service.learning.offpolicy import PolicyError, policy_value
from service.reporting.evaluation import POLICIES

RISKY, RESTRAINT = "restraint_risky_hour", "restraint"


def summarise(run: SimulationRun) -> dict[str, Any]:
    rows, ids = run.rows, run.row_ids
    chances = outcome_chances(run.truths, ids)
    log = parse_rows(rows)
    evaluation = evaluate_log(log).to_dict()
    effects = []
    for effect in evaluation["effects"]:
        truth = true_effect(rows, ids, chances, effect["name"])
        value = truth[effect["scale"]] if truth else math.nan
        effects.append(
            {
                **effect,
                "truth": value,
                "covered": bool(effect["ci_low"] <= value <= effect["ci_high"]),
            }
        )
    return {
        "subscribers": run.options.subscribers,
        "days": run.options.days,
        "seed": run.options.seed,
        "decisions": evaluation["decisions"],
        "available_decisions": evaluation["available_decisions"],
        "nudges_sent": run.nudges_sent,
        "contacts_logged": run.contacts,
        "mean_outcome": _mean_outcome(rows),
        "effects": effects,
        "notes": evaluation["notes"],
        "risky_hour_timing": _timing(run, log, chances),
        "policies": _policies(run, log, chances),
        "model": {
            "effects_gamma": dict(run.world.effects),
            "protection_hours": PROTECTION,
            "habituation_half_life_days": run.world.half_life_days,
            "cadence_per_week": CADENCE,
            "sms_cap_per_24h": SMS_CAP,
        },
    }


def _mean_outcome(rows: list[dict[str, Any]]) -> float | None:
    known = [r["outcome"] for r in rows if r["available"] and r["outcome"] is not None]
    return sum(known) / len(known) if known else None


def _timing(run: SimulationRun, log: Any, chances: dict[int, dict[str, float]]) -> dict[str, Any]:
    truth = true_effect(run.rows, run.row_ids, chances, RISKY, none=RESTRAINT)
    delays = [t.send_delay_hours[RISKY] for t in run.truths.values() if RISKY in t.send_delay_hours]
    out: dict[str, Any] = {
        "truth": truth["risk_difference"] if truth else None,
        "scale": "risk_difference",
        "mean_delay_minutes": round(60 * float(np.mean(delays)), 1) if delays else None,
        "moved_later_share": round(float(np.mean([d > 0 for d in delays])), 3) if delays else None,
    }
    try:
        fit = option_versus_none(
            "risk_difference",
            option=RISKY,
            none=RESTRAINT,
            chosen=log.chosen,
            probabilities=log.probability_map(),
            outcome=log.outcome,
            person=log.person_code,
            available=log.usable,
            small_sample=True,
        )
    except EstimationError as error:
        out["note"] = str(error)
        return out
    low, high = fit.confidence_interval()[0]
    out |= {
        "estimate": float(fit.effect[0]),
        "ci_low": float(low),
        "ci_high": float(high),
        "people": fit.people,
        "decisions": fit.decisions,
    }
    if out["truth"] is not None:
        out["covered"] = bool(low <= out["truth"] <= high)
    return out


def _policies(run: SimulationRun, log: Any, chances: dict[int, dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, target in POLICIES.items():
        truth = true_policy_value(run.rows, run.row_ids, chances, target)
        try:
            value = policy_value(log, target).to_dict()
        except PolicyError as error:
            out[name] = {"truth": truth, "error": str(error)}
            continue
        out[name] = {"truth": truth, **value}
    return out


def render(summary: dict[str, Any], console: Console) -> None:
    console.print(
        f"{summary['subscribers']} simulated people, {summary['days']} days, seed "
        f"{summary['seed']}: {summary['decisions']} decision points "
        f"({summary['available_decisions']} available), {summary['nudges_sent']} nudges sent, "
        f"{summary['contacts_logged']} contacts of their own logged.",
        highlight=False,
    )
    table = Table("option", "scale", "truth", "estimate", "95% interval", "covers")
    for e in summary["effects"]:
        table.add_row(
            e["name"],
            e["scale"],
            f"{e['truth']:+.3f}",
            f"{e['estimate']:+.3f}",
            f"[{e['ci_low']:+.3f}, {e['ci_high']:+.3f}]",
            "yes" if e["covered"] else "no",
        )
    timing = summary["risky_hour_timing"]
    if "estimate" in timing:
        table.add_row(
            "risky hour vs v1 timing",
            timing["scale"],
            f"{timing['truth']:+.3f}",
            f"{timing['estimate']:+.3f}",
            f"[{timing['ci_low']:+.3f}, {timing['ci_high']:+.3f}]",
            "yes" if timing.get("covered") else "no",
        )
    console.print(table)
    if timing.get("mean_delay_minutes") is not None:
        console.print(
            f"The risky-hour reminder went {timing['mean_delay_minutes']:.0f} min after its "
            f"point on average (later in {100 * timing['moved_later_share']:.0f}% of them).",
            highlight=False,
        )
    policies = Table("candidate policy", "truth", "IPW", "doubly robust")
    for name, value in summary["policies"].items():
        if "error" in value:
            policies.add_row(name, f"{value['truth']:.3f}", value["error"], "")
            continue
        policies.add_row(
            name,
            f"{value['truth']:.3f}",
            _interval(value["ipw"]),
            _interval(value["doubly_robust"]),
        )
    console.print(policies)


def _interval(value: dict[str, Any]) -> str:
    return f"{value['estimate']:.3f} [{value['ci_low']:.3f}, {value['ci_high']:.3f}]"
