"""Wake-ups: how a web request tells the senders that something is due now.

Only ids travel, and only after the commit that made the rows (STYLE.md:
"Enqueue a task only after the commit that created its row"). With a broker
the wake-up is a Celery task; in the all-in-one process it is an Event the
ticker thread waits on.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from celery import Celery

# Celery task names: `workers` registers them, and `service` sends by name only
# (nothing in `service` imports `workers`, ARCHITECTURE.md).
PLAN_TASK = "steady.plan"
DISPATCH_TASK = "steady.dispatch"
SEND_MESSAGES_TASK = "steady.send_messages"


class Waker(Protocol):
    def wake(self, message_ids: Sequence[int]) -> None: ...

    def wake_planner(self, *, then_dispatch: bool = False) -> None:
        """Someone became plannable (a confirmation, an import): plan now, not next tick.

        `then_dispatch`: also dispatch afterwards even if the plan made nothing
        (an import's confirmations are rows already)."""
        ...


class NullWaker:
    """Nothing listens: the next scheduled tick picks the rows up."""

    def wake(self, message_ids: Sequence[int]) -> None:
        return None

    def wake_planner(self, *, then_dispatch: bool = False) -> None:
        return None


class ThreadWaker:
    """Wakes the in-process ticker (`steady run`)."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def wake(self, message_ids: Sequence[int]) -> None:
        if message_ids:
            self.event.set()

    def wake_planner(self, *, then_dispatch: bool = False) -> None:
        self.event.set()  # the ticker's pass plans, then dispatches

    def wait(self, timeout: float) -> bool:
        woke = self.event.wait(timeout)
        self.event.clear()
        return woke


class CeleryWaker:
    """Asks a worker to send these rows now, by task name over the broker."""

    def __init__(self, broker_url: str) -> None:
        self.broker_url = broker_url
        self._app: Celery | None = None

    def wake(self, message_ids: Sequence[int]) -> None:
        if message_ids:
            self._celery().send_task(SEND_MESSAGES_TASK, args=[list(message_ids)])

    def wake_planner(self, *, then_dispatch: bool = False) -> None:
        kwargs = {"then_dispatch": True} if then_dispatch else {}
        self._celery().send_task(PLAN_TASK, kwargs=kwargs)

    def _celery(self) -> Celery:
        if self._app is None:  # built on first use: after a web process forks
            from celery import Celery

            from service.storage.redis_url import celery_broker

            url, transport_options = celery_broker(self.broker_url)
            self._app = Celery("steady-web", broker=url, set_as_current=False)
            self._app.conf.update(
                task_serializer="json",
                accept_content=["json"],
                broker_transport_options=transport_options,
            )
        return self._app
