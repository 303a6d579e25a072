"""What every group of `steady` commands shares: the settings or a usage exit, a time
as the operator types it, a JSON array streamed row by row."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

import typer
from rich.console import Console

from service.settings import ConfigurationError, Settings, load_settings

EXIT_USAGE = 2  # the settings or the arguments cannot be used at all

errors = Console(stderr=True, soft_wrap=True, highlight=False)


def settings_or_exit(**overrides: Any) -> Settings:
    """The settings, or the reason they cannot be used on stderr and exit 2."""
    try:
        return load_settings(**overrides)
    except ConfigurationError as exc:
        errors.print(str(exc), style="red", markup=False)
        raise typer.Exit(EXIT_USAGE) from None


def parse_time(value: str, option: str) -> datetime:
    """ISO-8601 with Z or an offset; without one it means UTC."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"not an ISO-8601 time: {value!r}", param_hint=option) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def write_json_array(out: TextIO, rows: Iterable[dict[str, Any]]) -> None:
    """One JSON array, a row a line, written as the rows come: memory stays flat."""
    out.write("[")
    for index, row in enumerate(rows):
        out.write(("," if index else "") + "\n  " + json.dumps(row))
    out.write("\n]\n")
