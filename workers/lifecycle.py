"""What worker and beat do around their work: logging, readiness, and the first wake-up.

* Logging: Celery's own lines go through `service.logs` (JSON, STEADY_LOG_LEVEL) because a
  receiver of `setup_logging` makes Celery leave logging alone.
* Readiness: `<STEADY_STATE_DIR>/worker.ready` and `beat.ready` (workers.health), touched
  when ready and on every heartbeat, announced at any log level.
* Start at once: beat plans and dispatches the moment it starts instead of one interval later
  (Celery's schedule counts its first interval from start).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any, ClassVar

import celery.apps.worker
from celery import Celery, bootsteps, signals
from celery.beat import PersistentScheduler

from service.logs import announce, configure_logging
from service.sending.wake import DISPATCH_TASK, PLAN_TASK
from service.settings import get_settings
from workers import health


@signals.setup_logging.connect
def _setup_logging(loglevel: Any = None, **_kwargs: Any) -> None:
    """Celery's lines (and kombu's) as JSON, like Steady's own; Celery configures nothing."""
    configure_logging(json=True, level=loglevel or get_settings().log_level)


def _say_json(msg: str, f: Any = sys.__stderr__) -> None:
    """Celery's signal-handler messages ("worker: Warm shutdown") as JSON lines too.

    Celery writes them with a raw os.write from inside signal handlers, past logging;
    this keeps that (no lock is taken) and only changes the format.
    """
    line = {
        "event": msg.strip(),
        "level": "info",
        "logger": "celery.apps.worker",
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    with suppress(OSError, ValueError, AttributeError):  # best effort, as Celery's own
        os.write(f.fileno(), (json.dumps(line) + "\n").encode())


celery.apps.worker.safe_say = _say_json


# --- worker ------------------------------------------------------------------------------


class Heartbeat(bootsteps.StartStopStep):  # type: ignore[misc]
    """Refreshes worker.ready from the consumer's own event loop: a wedged loop goes stale."""

    requires: ClassVar[tuple[str, ...]] = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.timer_ref: Any = None

    def start(self, consumer: Any) -> None:
        state_dir = get_settings().state_dir
        self.timer_ref = consumer.timer.call_repeatedly(
            health.HEARTBEAT_SECONDS, health.beat, (state_dir, "worker"), priority=10
        )

    def stop(self, consumer: Any) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None


@signals.worker_ready.connect
def _worker_ready(sender: Any = None, **_kwargs: Any) -> None:
    settings = get_settings()
    health.beat(settings.state_dir, "worker")
    announce(
        "worker_ready",
        hostname=getattr(sender, "hostname", None) or socket.gethostname(),
        pid=os.getpid(),
        ready_file=str(health.ready_file(settings.state_dir, "worker")),
    )


@signals.worker_shutdown.connect
def _worker_shutdown(**_kwargs: Any) -> None:
    health.clear(get_settings().state_dir, "worker")
    announce("worker_stopping", pid=os.getpid())


# --- beat --------------------------------------------------------------------------------


class SteadyScheduler(PersistentScheduler):  # type: ignore[misc]
    """Celery's file-backed scheduler that also refreshes beat.ready on its loop."""

    _last_heartbeat = 0.0
    _closed = False

    def tick(self, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        if now - self._last_heartbeat >= health.HEARTBEAT_SECONDS / 2:
            health.beat(get_settings().state_dir, "beat")
            self._last_heartbeat = now
        return super().tick(*args, **kwargs)

    def close(self) -> None:
        super().close()
        if not self._closed:  # beat closes its scheduler more than once
            self._closed = True
            health.clear(get_settings().state_dir, "beat")
            announce("beat_stopping", pid=os.getpid())


@signals.beat_init.connect
def _beat_init(sender: Any = None, **_kwargs: Any) -> None:
    """Plan and dispatch now: the schedule's first run would come one interval later."""
    app: Celery = sender.app
    kick(app)
    settings = get_settings()
    health.beat(settings.state_dir, "beat")
    announce(
        "beat_ready",
        hostname=getattr(sender, "hostname", None) or socket.gethostname(),
        pid=os.getpid(),
        ready_file=str(health.ready_file(settings.state_dir, "beat")),
        schedule=str(getattr(sender, "schedule_filename", "")),
    )


def kick(app: Celery) -> None:
    """What is due now goes now; the plan then dispatches what it made."""
    app.send_task(DISPATCH_TASK)
    app.send_task(PLAN_TASK, kwargs={"then_dispatch": True})
