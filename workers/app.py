"""The Celery app. Redis only carries wake-ups and ids; the database is the schedule.

No task is ever scheduled with an ETA for a future nudge: ETAs sit in worker
memory and come back after the visibility timeout (PERFORMANCE.md). Beat wakes
the planner and the dispatcher; claims in the database decide who sends what,
so a redelivered task or a second beat sends nothing twice.
"""

from __future__ import annotations

from celery import Celery

from service.sending.wake import DISPATCH_TASK, PLAN_TASK
from service.settings import Settings, get_settings
from service.storage.redis_url import celery_broker
from workers import health


def make_celery(settings: Settings) -> Celery:
    broker = settings.broker_url
    url, sentinel_options = celery_broker(broker) if broker else ("memory://", {})
    app = Celery("steady", broker=url, include=["workers.tasks"])
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        # A task is acknowledged after it ran; a worker killed mid-task has it
        # redelivered, and the claims make the second run harmless.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_max_memory_per_child=250_000,  # KiB: recycle a child before it nears 300 MB
        broker_connection_retry_on_startup=True,
        # Losing Redis must not cut a dispatch short between the provider's answer and
        # the commit of it: the task finishes, its ack is lost, the redelivered copy
        # finds nothing left to claim (tests/system/faults/test_server_restarts.py
        # restarts and flushes Redis).
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_transport_options={"visibility_timeout": 600, **sentinel_options},
        # No broker: run tasks in the caller (tests, all-in-one).
        task_always_eager=broker is None,
        task_eager_propagates=True,
        timezone="UTC",
        # Logging is Steady's (workers.lifecycle): one JSON format for every line.
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        # Beat's loop wakes at least this often, so its heartbeat stays fresh.
        beat_scheduler="workers.lifecycle:SteadyScheduler",
        beat_max_loop_interval=health.HEARTBEAT_SECONDS,
        beat_schedule={
            "plan": {"task": PLAN_TASK, "schedule": settings.tick_seconds * 2},
            "dispatch": {"task": DISPATCH_TASK, "schedule": settings.tick_seconds},
        },
    )
    from workers.lifecycle import Heartbeat

    app.steps["consumer"].add(Heartbeat)
    return app


celery_app = make_celery(get_settings())
