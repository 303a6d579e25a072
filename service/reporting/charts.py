"""Small server-side SVG charts for the admin dashboard: no JavaScript, no library.

Each chart is an `<svg role="img">` labelled by its `<title>` and `<desc>`; the
description states the figures in words, so a screen reader gets the data and
not just "chart". Every bar has its own `<title>` (a tooltip on hover or long
press). The SVG scales to its container's width, so it reads on a phone.
Every piece of text goes through `escape`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

from service.reporting import stats

WIDTH = 400
BAR_AREA_HEIGHT = 150
AXIS_LEFT = 30
AXIS_BOTTOM = 22
LEGEND_HEIGHT = 20
ROW_HEIGHT = 26
LABEL_WIDTH = 110
FONT_SIZE = 14
PALETTE = ("#1f5f8b", "#c07a1a", "#3d7d4a", "#8b3a62", "#5a6b7a")
EMPTY_TEXT = "No data yet."

_ids = itertools.count(1)


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[int]
    color: str | None = None


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _open(title: str, desc: str, height: float) -> tuple[str, list[str]]:
    chart_id = f"chart{next(_ids)}"
    head = (
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {_fmt(height)}" width="100%" '
        f'aria-labelledby="{chart_id}-t {chart_id}-d" '
        f'font-family="system-ui, sans-serif" font-size="{FONT_SIZE}" '
        f'xmlns="http://www.w3.org/2000/svg">'
    )
    return chart_id, [
        head,
        f'<title id="{chart_id}-t">{escape(title)}</title>',
        f'<desc id="{chart_id}-d">{escape(desc)}</desc>',
    ]


def _nice_ceiling(value: int) -> int:
    """A round axis maximum at or above `value` (1, 2, 5, 10, 20, 50, ...)."""
    if value <= 0:
        return 1
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if step * magnitude >= value:
                return step * magnitude
        magnitude *= 10


def column_chart(
    title: str,
    desc: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    label_every: int = 1,
) -> Markup:
    """Vertical bars, one per label, stacked by series (oldest on the left).

    With `label_every` > 1 only every so many bars are labelled, counted back
    from the newest, which is always labelled.
    """
    count = len(labels)
    totals = [sum(s.values[i] for s in series) for i in range(count)]
    top = _nice_ceiling(max(totals, default=0))
    legend = len(series) > 1
    height = BAR_AREA_HEIGHT + AXIS_BOTTOM + (LEGEND_HEIGHT if legend else 0) + 6
    _, parts = _open(title, desc, height)
    y0 = (LEGEND_HEIGHT if legend else 0) + 6
    plot_width = WIDTH - AXIS_LEFT - 16  # room for the newest label
    slot = plot_width / max(count, 1)
    bar = max(slot * 0.8, 1.0)
    base = y0 + BAR_AREA_HEIGHT
    if legend:
        parts.append(_legend(series))
    parts.append('<g fill="#4a5866" text-anchor="end" aria-hidden="true">')
    for tick in (0, top // 2 if top >= 2 else None, top):
        if tick is None:
            continue
        y = base - BAR_AREA_HEIGHT * tick / top
        parts.append(
            f'<line x1="{AXIS_LEFT}" x2="{WIDTH}" y1="{_fmt(y)}" y2="{_fmt(y)}" '
            f'stroke="#d8dde2" stroke-width="1"/>'
            f'<text x="{AXIS_LEFT - 4}" y="{_fmt(y + 4)}">{tick}</text>'
        )
    parts.append("</g>")
    for i, label in enumerate(labels):
        x = AXIS_LEFT + i * slot + (slot - bar) / 2
        y = base
        for index, one in enumerate(series):
            value = one.values[i]
            if value <= 0:
                continue
            h = BAR_AREA_HEIGHT * value / top
            y -= h
            parts.append(
                f'<rect x="{_fmt(x)}" y="{_fmt(y)}" width="{_fmt(bar)}" height="{_fmt(h)}" '
                f'fill="{_color(one, index)}"><title>{escape(label)}: {escape(one.name)} '
                f"{value}</title></rect>"
            )
        if (count - 1 - i) % label_every == 0:  # the newest bar always has its label
            parts.append(
                f'<text x="{_fmt(x + bar / 2)}" y="{_fmt(base + 15)}" text-anchor="middle" '
                f'fill="#4a5866" aria-hidden="true">{escape(label)}</text>'
            )
    if not any(totals):
        parts.append(_empty_note(y0 + BAR_AREA_HEIGHT / 2))
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above


def bar_list(title: str, desc: str, rows: Sequence[tuple[str, int, str | None]]) -> Markup:
    """Horizontal bars, one row per (label, value, colour), value written beside each."""
    height = max(len(rows), 1) * ROW_HEIGHT + 8
    _, parts = _open(title, desc, height)
    top = max((value for _, value, _ in rows), default=0) or 1
    room = WIDTH - LABEL_WIDTH - 48
    for index, (label, value, color) in enumerate(rows):
        y = 4 + index * ROW_HEIGHT
        width = room * value / top
        fill = color or PALETTE[0]
        parts.append(
            f'<text x="{LABEL_WIDTH - 6}" y="{y + 16}" text-anchor="end" fill="#1d2733">'
            f"{escape(label)}</text>"
            f'<rect x="{LABEL_WIDTH}" y="{y + 3}" width="{_fmt(max(width, 1 if value else 0))}" '
            f'height="{ROW_HEIGHT - 8}" rx="3" fill="{escape(fill)}">'
            f"<title>{escape(label)}: {value}</title></rect>"
            f'<text x="{_fmt(LABEL_WIDTH + width + 6)}" y="{y + 16}" fill="#1d2733">{value}</text>'
        )
    if not rows:
        parts.append(_empty_note(height / 2 + 4))
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above


def _color(series: Series, index: int) -> str:
    return str(escape(series.color or PALETTE[index % len(PALETTE)]))


def _legend(series: Sequence[Series]) -> str:
    items = []
    x = AXIS_LEFT
    for index, one in enumerate(series):
        items.append(
            f'<rect x="{x}" y="4" width="12" height="12" fill="{_color(one, index)}"/>'
            f'<text x="{x + 16}" y="14" fill="#1d2733">{escape(one.name)}</text>'
        )
        x += 30 + 9 * len(one.name)
    return '<g aria-hidden="true">' + "".join(items) + "</g>"


def _empty_note(y: float) -> str:
    return (
        f'<text x="{WIDTH / 2}" y="{_fmt(y)}" text-anchor="middle" fill="#4a5866">'
        f"{EMPTY_TEXT}</text>"
    )


# --- the dashboard's charts ----------------------------------------------------------


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _hourly_chart(title: str, intro: str, series: stats.HourlySeries) -> Markup:
    labels = [f"{hour:%H}h" for hour in series.hours]
    lines = [Series(name, counts) for name, counts in series.by_channel.items()]
    totals = {name: sum(counts) for name, counts in series.by_channel.items()}
    per_hour = [sum(one.values[i] for one in lines) for i in range(len(labels))]
    desc = f"{intro} Total {sum(totals.values())}: " + ", ".join(
        f"{name} {count}" for name, count in totals.items()
    )
    if any(per_hour):
        busiest = max(range(len(per_hour)), key=per_hour.__getitem__)
        desc += (
            f". Busiest hour {series.hours[busiest]:%Y-%m-%d %H:00} UTC with {per_hour[busiest]}"
        )
    return column_chart(title, desc + ".", labels, lines, label_every=6)


def dashboard_context(view: stats.Dashboard, flagged: list[dict[str, Any]]) -> dict[str, Any]:
    """What `admin.html` shows: headline figures, charts as inline SVG, flagged people."""
    figures = view.figures
    subscribers = figures["subscribers"]
    funnel = view.funnel
    # Of the messages with a final delivery report: TwiML replies and the outbox
    # never get one, so dividing by "sent" would understate it.
    reported = funnel.delivered + funnel.undelivered + funnel.failed
    delivery_rate = f"{100 * funnel.delivered / reported:.0f}%" if reported else "–"
    headline = [
        ("Active subscribers", str(subscribers["active"]), f"{subscribers['pending']} pending"),
        ("Flagged", str(subscribers["flagged"]), "need an operator"),
        ("Sent, last 24\u00a0h", str(view.sent_last_24h), "handed to a provider"),
        ("Queue lag", _duration(figures["queue"]["lag_seconds"]), f"{figures['queue']['due']} due"),
        ("Delivered", delivery_rate, f"of final reports, last {funnel.days} days"),
        ("Opt-outs", str(figures["opt_outs"]), f"{figures['suppressions']} suppressed"),
    ]
    funnel_rows: list[tuple[str, int, str | None]] = [
        ("Scheduled", funnel.scheduled, "#5a6b7a"),
        ("Sent", funnel.sent, "#1f5f8b"),
        ("Delivered", funnel.delivered, "#3d7d4a"),
        ("Undelivered", funnel.undelivered, "#c07a1a"),
        ("Failed", funnel.failed, "#9b1c1c"),
        ("Expired", funnel.expired, "#8a96a3"),
        ("Cancelled", funnel.cancelled, "#8a96a3"),
        ("Still waiting", funnel.waiting, "#8a96a3"),
    ]
    failure_rows: list[tuple[str, int, str | None]] = [
        (f"{channel} {code}", count, "#9b1c1c") for channel, code, count in view.failures
    ]
    opt_out_labels = [f"{day:%b} {day.day}" for day, _ in view.opt_outs_daily]
    opt_out_counts = [count for _, count in view.opt_outs_daily]
    charts = [
        (
            "Sends per hour",
            _hourly_chart(
                "Sends per hour by channel, last 48 hours",
                "Messages handed to a provider per hour over the last 48 hours, UTC.",
                view.sends,
            ),
            "Last 48 hours, UTC, by channel.",
        ),
        (
            "Delivery funnel",
            bar_list(
                f"Delivery funnel, last {funnel.days} days",
                f"Of {funnel.scheduled} messages created in the last {funnel.days} days: "
                + ", ".join(f"{label.lower()} {value}" for label, value, _ in funnel_rows[1:])
                + ".",
                funnel_rows,
            ),
            f"Messages created in the last {funnel.days} days, by what became of them.",
        ),
        (
            "Failures by error code",
            bar_list(
                f"Failures by error code, last {funnel.days} days",
                "Failed and undelivered messages by channel and provider error code: "
                + (
                    ", ".join(f"{label} {count}" for label, count, _ in failure_rows)
                    if failure_rows
                    else "none"
                )
                + ".",
                failure_rows,
            ),
            "Twilio and SendGrid codes; 'none' means the provider gave no code.",
        ),
        (
            "Opt-outs per day",
            column_chart(
                f"Opt-outs per day, last {len(opt_out_counts)} days",
                f"Channels stopped per day over the last {len(opt_out_counts)} days, UTC: "
                f"{sum(opt_out_counts)} in all, at most {max(opt_out_counts, default=0)} "
                "in one day.",
                opt_out_labels,
                [Series("opt-outs", opt_out_counts, "#8b3a62")],
                label_every=2,
            ),
            "Stops that still stand (a channel started again no longer counts).",
        ),
        (
            "Queue: scheduled per hour",
            _hourly_chart(
                "Scheduled messages per hour, next 24 hours",
                f"Queue lag now {_duration(figures['queue']['lag_seconds'])} with "
                f"{figures['queue']['due']} due. Messages scheduled per hour for the next "
                "24 hours, UTC.",
                view.upcoming,
            ),
            "What the dispatcher has ahead of it; the first bar includes anything overdue "
            "this hour.",
        ),
    ]
    return {
        "title": "Steady admin",
        "generated_at": f"{view.now:%Y-%m-%d %H:%M} UTC",
        "headline": headline,
        "charts": charts,
        "flagged": flagged,
        "messages": figures["messages"],
        "delivery_events": figures["delivery_events"],
    }
