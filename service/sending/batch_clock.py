"""The clock one dispatch batch runs on."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# A `now` this close to the wall clock is the real time (see `BatchClock`).
LIVE_CLOCK_TOLERANCE = timedelta(minutes=1)


@dataclass(frozen=True)
class BatchClock:
    """The caller's `now`, moved on by the monotonic clock while the batch runs.

    A worker passes the current time: each send's `sent_at` is then its real
    handoff, measured from `now` on the monotonic clock (unmoved by wall-clock
    jumps). A `now` far from the wall clock simulates another time (tests,
    `steady tick --now`): real seconds do not belong on that timeline, and the
    whole pass happens at `now`.
    """

    start: datetime
    started: float
    live: bool

    @classmethod
    def begin(cls, now: datetime) -> BatchClock:
        live = abs(datetime.now(UTC) - now) <= LIVE_CLOCK_TOLERANCE
        return cls(now, time.monotonic(), live)

    def now(self) -> datetime:
        if not self.live:
            return self.start
        return self.start + timedelta(seconds=time.monotonic() - self.started)

    def elapsed(self) -> float:
        """Real seconds since the batch began (for its time budget)."""
        return time.monotonic() - self.started
