"""The bench's process helpers, with real processes."""

from __future__ import annotations

import subprocess
import sys
import time

from service.devtools.bench.scratch import tree_cpu_seconds, wait_until_idle

BUSY_SECONDS = 1.5
# Burns a core for BUSY_SECONDS, then rests: a web worker training its model, then idle.
BUSY_THEN_IDLE = (
    "import time\n"
    f"end = time.monotonic() + {BUSY_SECONDS}\n"
    "while time.monotonic() < end:\n"
    "    pass\n"
    "time.sleep(60)\n"
)


def test_wait_until_idle_returns_once_the_process_stops_working() -> None:
    process = subprocess.Popen([sys.executable, "-c", BUSY_THEN_IDLE])
    try:
        waited = wait_until_idle(process.pid, timeout=30)
        cpu_when_idle = tree_cpu_seconds(process.pid)
        time.sleep(1)
        cpu_a_second_later = tree_cpu_seconds(process.pid)
    finally:
        process.kill()
        process.wait()
    assert waited < 30, "it never saw the process at rest"
    # On a shared machine the burn may get less than a core: it has done most of its work.
    assert cpu_when_idle > 0.5 * BUSY_SECONDS, "returned while the process was still busy"
    assert cpu_a_second_later - cpu_when_idle < 0.1, "the process was not at rest yet"
