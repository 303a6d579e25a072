"""Steady's real processes for the crash-safety tests: their settings, start, stop and logs."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import pytest

from service.devtools.servers import free_port, wait_until
from tests.support.processes import steady_process_group

REQUIRE_SERVERS = os.environ.get("STEADY_REQUIRE_SERVERS") == "1"


TWILIO_ACCOUNT_SID = "AC" + "f" * 32
TWILIO_TOKEN = "faults-auth-token"  # the sandbox accepts any token
TWILIO_FROM = "+15005550006"
SECRET_KEY = "faults-secret-key-0123456789abcdef0123456789"


# Generous: two cores shared with other test runs and engineers.
SETTLE_SECONDS = 120.0
POLL_SECONDS = 0.25
LOG_TAIL_LINES = 60


def require_server(message: str) -> None:
    """Skip, or fail under STEADY_REQUIRE_SERVERS=1 (as conftest does)."""
    if REQUIRE_SERVERS:
        pytest.fail(message + " (STEADY_REQUIRE_SERVERS=1: servers are required)", pytrace=False)
    pytest.skip(message)


def poll_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    describe: Callable[[], str] | None = None,
) -> None:
    """`wait_until` that says what it saw when it gives up."""
    try:
        wait_until(check, timeout, what, interval=POLL_SECONDS)
    except AssertionError as exc:
        if describe is None:
            raise
        raise AssertionError(f"{exc}; state: {describe()}") from None


# --- Steady's processes ----------------------------------------------------------------


def service_env(
    database_url: str, broker_url: str, sandbox_url: str, **overrides: str
) -> dict[str, str]:
    """What `steady worker` and `steady beat` run with in these tests."""
    env = {
        "STEADY_DATABASE_URL": database_url,
        "STEADY_BROKER_URL": broker_url,
        "STEADY_REDIS_URL": broker_url,
        # Nobody listens there: the sandbox's status callbacks are off anyway.
        "STEADY_PUBLIC_URL": f"http://127.0.0.1:{free_port()}",
        "STEADY_SECRET_KEY": SECRET_KEY,
        "STEADY_TICK_SECONDS": "0.5",
        "STEADY_SEND_SPREAD_MINUTES": "0",  # welcomes due at once, unspread
        "STEADY_SEND_LEASE_SECONDS": "5",
        "STEADY_DISPATCH_BATCH_SIZE": "4",
        "STEADY_PROVIDER_TIMEOUT_SECONDS": "2",
        # Settings other engineers are adding: reconciliation's settle delay, and no
        # SMS rate limit (its default of 1/s would stretch every scenario).
        "STEADY_RECONCILE_AFTER_SECONDS": "1",
        "STEADY_SMS_RATE_PER_SECOND": "0",
        "TWILIO_ACCOUNT_SID": TWILIO_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_FROM_NUMBER": TWILIO_FROM,
        "STEADY_TWILIO_API_URL": sandbox_url,
        "SENDGRID_API_KEY": "",
        "STEADY_CRASH_AT": "",
    }
    env.update(overrides)
    return env


class Services:
    """`steady worker` (prefork) and `steady beat`, real processes, logs under `logdir`.

    Stopped as whole process groups on the way out; if the block raised, the tails
    of every log are printed (pytest shows them with the failure).
    """

    def __init__(
        self,
        logdir: Path,
        env: dict[str, str],
        *,
        worker_env: dict[str, str] | None = None,
        concurrency: int = 2,
    ) -> None:
        self.logdir = logdir
        self.env = env
        self.worker_env = {**env, **(worker_env or {})}
        self.concurrency = concurrency
        self._stack = contextlib.ExitStack()
        self.worker: subprocess.Popen[bytes] | None = None
        self.beat: subprocess.Popen[bytes] | None = None
        self.extra_logs: list[Path] = []

    def __enter__(self) -> Services:
        self.logdir.mkdir(parents=True, exist_ok=True)
        try:
            self.worker = self._stack.enter_context(
                steady_process_group(
                    ["worker", "--concurrency", str(self.concurrency)],
                    self.worker_env,
                    self.logdir / "worker.log",
                    cwd=self.logdir,
                )
            )
            self.beat = self._stack.enter_context(
                steady_process_group(
                    ["beat", "--schedule", str(self.logdir / "beat-schedule")],
                    self.env,
                    self.logdir / "beat.log",
                    cwd=self.logdir,
                )
            )
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stack.close()
        if exc_type is not None:
            self.print_tails()

    def assert_alive(self) -> None:
        """The service recovered by itself: nobody restarted the worker or beat."""
        for name, process in (("worker", self.worker), ("beat", self.beat)):
            assert process is not None, f"steady {name} never started"
            assert process.poll() is None, (
                f"steady {name} exited ({process.returncode}); see {self.logdir / name}.log"
            )

    def log_text(self, name: str) -> str:
        return (self.logdir / name).read_text(errors="replace")

    def print_tails(self) -> None:
        for path in sorted(self.logdir.glob("*.log")) + self.extra_logs:
            if not path.exists():
                continue
            lines = path.read_text(errors="replace").splitlines()
            print(f"\n----- {path} (last {LOG_TAIL_LINES} of {len(lines)} lines) -----")
            print("\n".join(lines[-LOG_TAIL_LINES:]))
