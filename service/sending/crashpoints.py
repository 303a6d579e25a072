"""Crash points: where the fault tests kill a real worker with SIGKILL.

Off unless `STEADY_CRASH_AT` is set, which only the crash-safety tests do
(`tests/system/faults/`). `STEADY_CRASH_AT=after_send:3` makes the process kill
itself (`kill -9`, no cleanup, no `finally`) the third time it reaches
`after_send`. With `STEADY_CRASH_MARKER=/path` it dies only if it can create that
file first, so across a pool and its replacement children exactly one process
dies, once.

The points, in the order a batch passes them:

    claim        rows updated to `sending`, the claim not yet committed
    before_send  claim committed, this message not yet handed to the provider
    after_send   the provider accepted this message, the result not yet recorded
"""

from __future__ import annotations

import os
import signal

POINTS = frozenset({"claim", "before_send", "after_send"})


def _parse(spec: str) -> tuple[str, int] | None:
    if not spec:
        return None
    name, _, nth = spec.partition(":")
    if name not in POINTS:
        raise ValueError(f"STEADY_CRASH_AT: unknown crash point {name!r}")
    return name, int(nth or 1)


_TARGET = _parse(os.environ.get("STEADY_CRASH_AT", ""))
_MARKER = os.environ.get("STEADY_CRASH_MARKER")
_reached: dict[str, int] = {}


def reach(point: str) -> None:
    """Called at each crash point; a no-op unless this is the configured one."""
    if _TARGET is None or _TARGET[0] != point:
        return
    _reached[point] = count = _reached.get(point, 0) + 1
    if count != _TARGET[1]:
        return
    if _MARKER is not None:
        try:
            os.close(os.open(_MARKER, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            return  # another process already died here
    os.kill(os.getpid(), signal.SIGKILL)
