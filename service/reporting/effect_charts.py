"""`/admin/evaluation`: each nudge's estimated effect with its interval, as server-side SVG.

One interval chart per scale (a row per option: the 95 % interval as a line, the estimate
as a dot, zero marked) and, per option, the same by days since signup (a row per band),
so an operator sees at a glance whether a kind of nudge helps and whether that fades.
Like `charts`, every chart states its figures in words in its `<desc>` and every text
goes through `escape`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from markupsafe import Markup, escape

from service.reporting.charts import EMPTY_TEXT, PALETTE, WIDTH, _fmt, _open

ROW = 30
LABEL = 170
LABEL_FONT = 12
AXIS = 24
RIGHT = 16
SCALE_WORDS = {
    "risk_difference": "risk difference (share of days with no contact of their own)",
    "log_relative_risk": "log relative risk",
}
Interval = tuple[str, float, float, float]  # label, estimate, low, high


def _ticks(low: float, high: float) -> list[float]:
    """About four round ticks covering [low, high]."""
    span = high - low or 1.0
    step = 10 ** math.floor(math.log10(span / 4))
    for factor in (1, 2, 5, 10):
        if span / (step * factor) <= 5:
            step *= factor
            break
    ticks = [math.floor(low / step) * step]
    while ticks[-1] < high - 1e-12:
        ticks.append(ticks[-1] + step)
    return ticks


def interval_chart(title: str, desc: str, rows: Sequence[Interval]) -> Markup:
    """A row per (label, estimate, low, high) on one shared axis, with zero marked."""
    height = max(len(rows), 1) * ROW + AXIS + 8
    _, parts = _open(title, desc, height)
    if not rows:
        parts.append(
            f'<text x="{WIDTH / 2}" y="{_fmt(height / 2)}" text-anchor="middle" '
            f'fill="#4a5866">{EMPTY_TEXT}</text></svg>'
        )
        return Markup("".join(parts))  # noqa: S704 - the only text is a constant
    ticks = _ticks(min(0.0, *(r[2] for r in rows)), max(0.0, *(r[3] for r in rows)))
    low, high = ticks[0], ticks[-1]
    room = WIDTH - LABEL - RIGHT

    def x(value: float) -> float:
        return LABEL + room * (value - low) / (high - low)

    bottom = len(rows) * ROW + 4
    parts.append('<g fill="#4a5866" text-anchor="middle" aria-hidden="true">')
    for tick in ticks:
        parts.append(
            f'<line x1="{_fmt(x(tick))}" x2="{_fmt(x(tick))}" y1="4" y2="{bottom}" '
            f'stroke="{"#1d2733" if abs(tick) < 1e-12 else "#d8dde2"}" stroke-width="1"/>'
            f'<text x="{_fmt(x(tick))}" y="{bottom + 16}">{_fmt_tick(tick)}</text>'
        )
    parts.append("</g>")
    for index, (label, estimate, ci_low, ci_high) in enumerate(rows):
        y = 4 + index * ROW + ROW / 2
        color = PALETTE[index % len(PALETTE)]
        parts.append(
            f"<g><title>{escape(label)}: {estimate:+.3f}, 95% interval "
            f"{ci_low:+.3f} to {ci_high:+.3f}</title>"
            f'<text x="{LABEL - 8}" y="{_fmt(y + 4)}" text-anchor="end" fill="#1d2733" '
            f'font-size="{LABEL_FONT}">{escape(label.replace("_", " "))}</text>'
            f'<line x1="{_fmt(x(ci_low))}" x2="{_fmt(x(ci_high))}" y1="{_fmt(y)}" y2="{_fmt(y)}" '
            f'stroke="{color}" stroke-width="3" stroke-linecap="round"/>'
            f'<circle cx="{_fmt(x(estimate))}" cy="{_fmt(y)}" r="5" fill="{color}"/></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above


def _fmt_tick(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") if value else "0"


def _describe(rows: Sequence[Interval]) -> str:
    return "; ".join(
        f"{label} {estimate:+.3f} (95% interval {low:+.3f} to {high:+.3f})"
        for label, estimate, low, high in rows
    )


def _band(effect: dict[str, Any]) -> str:
    to = effect.get("days_to")
    return f"days {effect['days_from']}-{to}" if to is not None else f"day {effect['days_from']}+"


def evaluation_context(result: dict[str, Any]) -> dict[str, Any]:
    """What `evaluation.html` shows, from `steady evaluate --json`'s object."""
    charts = []
    for scale, words in SCALE_WORDS.items():
        rows = [
            (e["name"], e["estimate"], e["ci_low"], e["ci_high"])
            for e in result["effects"]
            if e["scale"] == scale
        ]
        desc = f"Effect of each kind of nudge against no nudge, {words}: " + (
            _describe(rows) or "none estimated yet"
        )
        heading = f"Effects: {scale.replace('_', ' ')}"
        charts.append((heading, interval_chart(f"{heading}, 95% intervals", desc + ".", rows)))
    options = dict.fromkeys(e["name"] for e in result["by_days_since_signup"])
    for option in options:
        rows = [
            (_band(e), e["estimate"], e["ci_low"], e["ci_high"])
            for e in result["by_days_since_signup"]
            if e["name"] == option and e["scale"] == "risk_difference"
        ]
        heading = f"{option} by days since signup"
        desc = f"Effect of {option} against no nudge by days since signup, risk difference: "
        charts.append((heading, interval_chart(heading, desc + _describe(rows) + ".", rows)))
    return {
        "title": "Steady evaluation",
        "result": result,
        "charts": charts,
    }
