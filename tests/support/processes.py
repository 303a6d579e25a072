"""Real Steady processes for integration tests: started with the same commands
operators run (`steady web`, `steady worker`, `steady beat`), stopped after.

Servers a test may break without disturbing anyone (a Redis and a PostgreSQL
cluster of its own), free ports and waiting live in `service.devtools.servers`,
shared with the bench."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx

from service.devtools.servers import stop_process_group, wait_until

STEADY = str(Path(sys.executable).parent / "steady")


def _start(
    args: list[str], env: dict[str, str], log: IO[bytes], cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """`steady ARGS` with `env` on top of ours, in a process group of its own."""
    return subprocess.Popen(
        [STEADY, *args],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=cwd,
    )


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def steady_process(
    args: list[str], env: dict[str, str], log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `steady ARGS` with `env` on top of ours; terminate it after the block."""
    with log_path.open("wb") as log:
        process = _start(args, env, log)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def steady_web(env: dict[str, str], port: int, log_path: Path) -> Iterator[str]:
    url = f"http://127.0.0.1:{port}"
    with steady_process(["web", "--port", str(port)], env, log_path) as process:
        wait_until(
            lambda: process.poll() is None and _http_ok(f"{url}/healthz"),
            30,
            f"steady web on {url} (log: {log_path})",
        )
        yield url


@contextmanager
def steady_process_group(
    args: list[str], env: dict[str, str], log_path: Path, *, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Like `steady_process`, but stops the whole process group after the block.

    A Celery worker's pool children share its group: stopping the group leaves no
    orphan behind, even when the main process was killed or hangs on shutdown.
    """
    with log_path.open("wb") as log:
        process = _start(args, env, log, cwd)
        try:
            yield process
        finally:
            stop_process_group(process)
