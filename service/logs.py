"""Structured logs (structlog): JSON lines in production, readable in a terminal.

Personal data never belongs in a log line; as a second line of defence a
processor masks anything that looks like a phone number or an email address.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

# A run of 9+ digits and separators, standing alone: not inside a word or an id
# such as a Twilio SID or a hex request id, where digit runs are no phone number.
PHONE_PATTERN = re.compile(r"(?<![A-Za-z0-9])\+?\d[\d\s().-]{7,}\d(?![A-Za-z0-9])")
EMAIL_PATTERN = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
# "2026-03-02 17:00" looks like a run of digits too; dates are not personal data.
ISO_DATE_PREFIX = re.compile(r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2})?$")
UNMASKED_KEYS = frozenset({"timestamp", "level", "logger"})


def _mask_phone(match: re.Match[str]) -> str:
    found = match.group(0)
    if ISO_DATE_PREFIX.match(found):
        return found
    return found[:3] + "•••" + found[-2:]


def mask_text(value: str) -> str:
    """Mask anything in `value` that looks like an email address or a phone number."""
    value = EMAIL_PATTERN.sub(lambda m: m.group(0)[0] + "•••@" + m.group(0).split("@", 1)[1], value)
    return PHONE_PATTERN.sub(_mask_phone, value)


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {key: _mask_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_mask_value(item) for item in value]
    return value


def _mask_personal_data(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in event.items():
        if key not in UNMASKED_KEYS:
            event[key] = _mask_value(value)
    return event


def configure_logging(
    *, json: bool = True, level: int = logging.INFO, stream: TextIO | None = None
) -> None:
    """Set up structlog and route the standard library's logging through it.

    Each line carries what `structlog.contextvars` holds, such as the web
    request's `request_id` (service.web.middleware). Exceptions are rendered to
    text before masking, so a traceback is masked like any other field.
    """
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _mask_personal_data,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    # The Twilio SDK logs each request at INFO, query string included (a phone number,
    # when reconciliation lists messages to it), ten lines a send. Celery's worker sets
    # the root logger to INFO, so quiet the SDK's own logger: warnings still show.
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
