"""Real Steady processes for integration tests: started with the same commands
operators run (`steady web`, `steady worker`, `steady beat`), stopped after."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

STEADY = str(Path(sys.executable).parent / "steady")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


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
        process = subprocess.Popen(
            [STEADY, *args],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
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
