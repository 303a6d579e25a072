"""`steady demo` on the terminal: the simulated fortnight as a timeline with a summary."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from textwrap import shorten, wrap

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from service.devtools.demo.personas import DemoEvent, DemoResult, takeaway
from service.devtools.demo.timeline import simulate
from service.pacing.explanations import RULES

NAME_STYLES = ("cyan", "green", "magenta")
NAME_WIDTH = 8
INDENT = 7 + NAME_WIDTH  # "HH:MM  " and the name: continuation lines start under the arrow
MAX_QUOTE = 100  # characters of a message body shown


def _intro(console: Console, result: DemoResult) -> None:
    last = result.first_day + timedelta(days=result.days - 1)
    console.print(
        "[bold]Steady[/bold] texts short nudges to people going through a separation (hold "
        "back, give it time, do good things for yourself) and paces itself on what they text "
        "back: ME (I reached out), THEM (they did), DONE gym.\n"
        f"Below: {len(result.personas)} simulated people, {result.first_day:%a %-d %b} to "
        f"{last:%a %-d %b %Y}, nothing really sent. ← they texted; → Steady sent, with the "
        "rule that chose it. Times are each person's local time.",
        highlight=False,
    )
    for name, persona_result in zip(_names(result).values(), result.personas.values(), strict=True):
        persona = persona_result.persona
        place = persona.timezone.split("/")[-1].replace("_", " ")
        console.print(Text("  ") + name + Text(f"{persona.role} ({place})"))


def _names(result: DemoResult) -> dict[str, Text]:
    """Each name padded to the name column, in its own colour."""
    return {
        name: Text(f"{name:<{NAME_WIDTH}}", NAME_STYLES[index % len(NAME_STYLES)])
        for index, name in enumerate(result.personas)
    }


def _event_lines(event: DemoEvent, name: Text, explained: set[str], width: int) -> list[Text]:
    head = Text(f"{event.local:%H:%M}  ") + name
    if event.source == "signup":
        return [head + Text("signs up on the web; Steady texts to ask for a YES")]
    if event.source == "confirm":
        return []  # the signup line says it
    if event.source == "inbound":
        said = Text(f'← "{event.text}"')
        if event.effect:
            said.pad_right(max(1, 20 - len(said.plain)))
        return [head + said + Text(event.effect or "", style="bold")]
    what = Text(f"→ {event.kind or '':<10}{event.template or '':<21}")
    lines = [head + what + Text(f"rule: {event.rule}", style="yellow")]
    rule = event.rule or ""
    if rule in RULES and rule not in explained:  # the reason once; the rule id every time
        explained.add(rule)
        lines += [Text(" " * INDENT + line) for line in wrap("why: " + RULES[rule], width)]
    if event.text:
        quote = shorten(event.text, min(MAX_QUOTE, width - 2), placeholder="…")
        lines.append(Text(" " * INDENT) + Text(f'"{quote}"', style="dim"))
    return lines


def _timeline(console: Console, result: DemoResult) -> None:
    names = _names(result)
    explained: set[str] = set()
    day = None
    for event in result.timeline():
        if event.local.date() != day:
            day = event.local.date()
            console.print()
            console.rule(Text(f"{event.local:%a %-d %b}", style="bold"), align="left")
        for line in _event_lines(event, names[event.persona], explained, console.width - INDENT):
            console.print(line, highlight=False)


def _summary(console: Console, result: DemoResult) -> None:
    """Figures as rows, people as columns: narrow enough for any terminal."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    table.add_column("")
    for name in result.personas:
        table.add_column(name, justify="right")
    columns = [persona_result.figures() for persona_result in result.personas.values()]
    for label in columns[0]:
        table.add_row(label, *(column[label] for column in columns))
    console.print()
    console.rule(Text("The fortnight in numbers", style="bold"), align="left")
    console.print(table)
    console.print(takeaway(result), highlight=False)


def run_demo(
    console: Console,
    *,
    days: int = 14,
    start: datetime | None = None,
    experiment: bool = False,
    decisions: Path | None = None,
) -> DemoResult:
    """Simulate the fortnight and print it on `console` as a timeline with a summary."""
    result = simulate(days=days, start=start, experiment=experiment, decisions=decisions)
    _intro(console, result)
    _timeline(console, result)
    _summary(console, result)
    return result
