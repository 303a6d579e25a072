"""Thin tasks: each takes ids (or nothing), calls `service`, returns a count."""

from __future__ import annotations

from functools import cache

import structlog
from celery import signals

from service.sending.runtime import Runtime
from service.sending.wake import DISPATCH_TASK, PLAN_TASK, SEND_MESSAGES_TASK
from service.settings import get_settings
from service.storage.models import utcnow
from workers.app import celery_app

log = structlog.get_logger(__name__)

# A dispatch task drains for at most this long, then hands over to a fresh task so
# one busy worker cannot starve beat's other work.
DISPATCH_TIME_BUDGET_SECONDS = 20.0


@cache
def runtime() -> Runtime:
    """Built on first use inside each worker child, after the fork."""
    return Runtime.from_settings(get_settings())


@signals.worker_process_init.connect
def _warm_up(**_kwargs: object) -> None:
    """Build the runtime and open a connection in each pool child as it starts, so the
    first task after a start sends at once instead of paying for both."""
    try:
        with runtime().sessions() as session:
            session.connection()
    except Exception as exc:  # the first task tries again and reports it
        log.warning("warm_up_failed", error=type(exc).__name__)


@celery_app.task(name=PLAN_TASK)
def plan(then_dispatch: bool = False) -> int:
    """Plan what is due; dispatch after if anything was planned (or when asked to: an
    import made confirmations, beat has just started)."""
    report = runtime().plan(utcnow())
    if report.count or then_dispatch:
        dispatch.delay()
    return report.count


@celery_app.task(name=DISPATCH_TASK)
def dispatch() -> int:
    report = runtime().dispatch(utcnow(), clock=utcnow, time_budget=DISPATCH_TIME_BUDGET_SECONDS)
    if report.more:
        dispatch.delay()  # more is due: keep draining in a new task
    return len(report.outcomes)


@celery_app.task(name=SEND_MESSAGES_TASK)
def send_messages(message_ids: list[int]) -> int:
    """Send these rows now if still due (confirmations right after signup)."""
    return len(runtime().dispatcher.run_batch(utcnow(), ids=message_ids))
