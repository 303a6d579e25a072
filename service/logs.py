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
UUID = re.compile(r"([0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12})")
# Nor are IPv4 addresses (a broker's or a client's), which the digit run catches too.
IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?$")
UNMASKED_KEYS = frozenset({"timestamp", "level", "logger"})


def _mask_phone(match: re.Match[str]) -> str:
    found = match.group(0)
    if ISO_DATE_PREFIX.match(found) or IPV4.match(found):
        return found
    return found[:3] + "•••" + found[-2:]


def mask_text(value: str) -> str:
    """Mask anything in `value` that looks like an email address or a phone number."""
    if UUID.search(value):  # a task or request id: its digit groups are no phone number
        return "".join(
            part if UUID.fullmatch(part) else _mask_plain(part) for part in UUID.split(value)
        )
    return _mask_plain(value)


def _mask_plain(value: str) -> str:
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


# Marks the root handler `configure_logging` installs, so a second call replaces it
# and leaves other handlers (pytest's capture) alone.
_HANDLER_NAME = "steady"
_announcer: Any = None


def level_number(level: int | str) -> int:
    """`logging.INFO` from 20, "info" or "INFO"."""
    if isinstance(level, int):
        return level
    number = logging.getLevelName(level.strip().upper())
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}")
    return number


def configure_logging(
    *, json: bool = True, level: int | str = logging.INFO, stream: TextIO | None = None
) -> None:
    """Set up structlog and route the standard library's logging through it.

    Every line is rendered by the same processors, whether it comes from structlog
    (Steady's own events) or from the standard library (Celery, kombu, uvicorn), so
    a process writes one format only: JSON lines in production. `level` applies to
    both. Each line carries what `structlog.contextvars` holds, such as the web
    request's `request_id` (service.web.middleware). Exceptions are rendered to
    text before masking, so a traceback is masked like any other field.
    """
    global _announcer
    number = level_number(level)
    out = stream or sys.stderr
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        stamp,
        structlog.processors.format_exc_info,
        _mask_personal_data,
        renderer,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(number),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=True,
    )
    # Lifecycle lines (ready, stopping) go out whatever the level: an operator at
    # WARNING still sees that a process started.
    _announcer = structlog.wrap_logger(
        structlog.WriteLogger(file=out),
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.NOTSET),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                stamp,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _mask_personal_data,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(number)
    # A logger that does not propagate and has no handler of its own (billiard's
    # "multiprocessing" logger, which reports a pool child's death) falls back to
    # logging.lastResort, a bare stderr line: ours keeps those lines JSON too.
    last_resort = logging.StreamHandler(out)
    last_resort.setLevel(logging.WARNING)
    last_resort.setFormatter(handler.formatter)
    logging.lastResort = last_resort
    logging.captureWarnings(True)  # Python warnings (Celery's, libraries') as log lines too
    # The Twilio SDK logs each request at INFO, query string included (a phone number,
    # when reconciliation lists messages to it), ten lines a send: its own logger is
    # kept at WARNING whatever the level, so warnings still show.
    logging.getLogger("twilio.http_client").setLevel(max(number, logging.WARNING))


def announce(event: str, **fields: Any) -> None:
    """One lifecycle line (a process is ready, stopping) printed at any log level."""
    if _announcer is None:
        configure_logging()
    _announcer.info(event, **fields)
