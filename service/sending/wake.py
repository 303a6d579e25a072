"""Wake-ups: how a web request tells the senders that something is due now.

Only ids travel, and only after the commit that made the rows (STYLE.md:
"Enqueue a task only after the commit that created its row"). With a broker
the wake-up is a Celery task; in the all-in-one process it is an Event the
ticker thread waits on.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol


class Waker(Protocol):
    def wake(self, message_ids: Sequence[int]) -> None: ...


class NullWaker:
    """Nothing listens: the next scheduled tick picks the rows up."""

    def wake(self, message_ids: Sequence[int]) -> None:
        return None


class ThreadWaker:
    """Wakes the in-process ticker (`steady run`)."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def wake(self, message_ids: Sequence[int]) -> None:
        if message_ids:
            self.event.set()

    def wait(self, timeout: float) -> bool:
        woke = self.event.wait(timeout)
        self.event.clear()
        return woke


class CeleryWaker:
    """Asks a worker to send these rows now."""

    def wake(self, message_ids: Sequence[int]) -> None:
        if message_ids:
            from workers.tasks import send_messages

            send_messages.delay(list(message_ids))
