"""Readiness files: how an operator or a compose healthcheck knows a worker or beat is alive.

A process touches `<STEADY_STATE_DIR>/<role>.ready` when it is ready and again on every
heartbeat, and removes it when it stops; `steady health worker|beat` reads the file's age.
No Celery import here: the health check must start fast and reach nothing but the disk.
"""

from __future__ import annotations

import os
import time
from contextlib import suppress
from pathlib import Path
from typing import Literal

Role = Literal["worker", "beat"]
ROLES: tuple[Role, ...] = ("worker", "beat")
# A heartbeat every 10 s; a file older than 60 s means the process stopped working
# (wedged, lost its broker, or killed without cleaning up).
HEARTBEAT_SECONDS = 10.0
STALE_AFTER_SECONDS = 60.0


def ready_file(state_dir: Path, role: Role) -> Path:
    return state_dir / f"{role}.ready"


def ensure_state_dir(state_dir: Path) -> Path:
    """STEADY_STATE_DIR, created if missing (beat's schedule and the readiness files)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    return state_dir


def beat(state_dir: Path, role: Role) -> None:
    """Mark `role` alive now (creates the file on the first call)."""
    path = ready_file(ensure_state_dir(state_dir), role)
    path.touch()
    os.utime(path)


def clear(state_dir: Path, role: Role) -> None:
    with suppress(FileNotFoundError):
        ready_file(state_dir, role).unlink()


def check(
    state_dir: Path, role: Role, *, max_age: float = STALE_AFTER_SECONDS, now: float | None = None
) -> tuple[bool, str]:
    """(healthy, why) for `role` in `state_dir`."""
    path = ready_file(state_dir, role)
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except FileNotFoundError:
        return False, f"{role}: not ready ({path} does not exist)"
    if age > max_age:
        return False, f"{role}: stale (last heartbeat {age:.0f}s ago, limit {max_age:.0f}s)"
    return True, f"{role}: ready (last heartbeat {age:.0f}s ago)"
