"""Structured logs (structlog): JSON lines in production, readable in a terminal.

Personal data never belongs in a log line; as a second line of defence a
processor masks anything that looks like a phone number or an email address.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

PHONE_PATTERN = re.compile(r"\+?\d[\d\s().-]{7,}\d")
EMAIL_PATTERN = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")


def mask_text(value: str) -> str:
    value = EMAIL_PATTERN.sub(lambda m: m.group(0)[0] + "•••@" + m.group(0).split("@", 1)[1], value)
    return PHONE_PATTERN.sub(lambda m: m.group(0)[:3] + "•••" + m.group(0)[-2:], value)


def _mask_personal_data(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in event.items():
        if isinstance(value, str) and key != "timestamp":
            event[key] = mask_text(value)
    return event


def configure_logging(*, json: bool = True, level: int = logging.INFO) -> None:
    """Set up structlog and route the standard library's logging through it."""
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _mask_personal_data,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
