"""The bench's scratch world: a database, a broker and processes it owns and removes.

Nothing the bench touches outlives it: the database is created for the run and
dropped after, the Redis is a private `redis-server` on a free port (the shared
one is only used, under a unique queue, when no `redis-server` binary exists),
and every process is started in its own process group and killed with it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from service.storage.db import get_engine, normalise_url, upgrade

DEFAULT_POSTGRES_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
SHARED_REDIS = "redis://127.0.0.1:6379/14"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.1)
    raise RuntimeError(f"bench: gave up waiting for {what}")


def _postgres_reachable(url: str) -> bool:
    engine = create_engine(normalise_url(url), connect_args={"connect_timeout": 2})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
    finally:
        engine.dispose()


@contextlib.contextmanager
def scratch_database(override: str | None, workdir: Path) -> Iterator[str]:
    """A migrated, empty database for one run; dropped (or deleted) afterwards.

    `override` (STEADY_BENCH_DATABASE_URL) names the server to use: for PostgreSQL
    a fresh database is created on it, for SQLite the file must not exist yet.
    """
    server = override
    if server is None:
        server = DEFAULT_POSTGRES_SERVER if _postgres_reachable(DEFAULT_POSTGRES_SERVER) else None
    if server is None or server.startswith("sqlite"):
        path = Path(make_url(server).database or "") if server else workdir / "steady-bench.sqlite3"
        if path.exists():
            raise RuntimeError(f"bench: {path} exists; the bench only writes to a new database")
        url = f"sqlite:///{path}"
        upgrade(url)
        try:
            yield url
        finally:
            get_engine(url).dispose()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    name = f"steady_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(normalise_url(server), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(normalise_url(server)).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        get_engine(url).dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def scratch_redis(override: str | None, workdir: Path) -> Iterator[str]:
    """A private Redis for the broker (or STEADY_BENCH_BROKER_URL, used as is)."""
    if override:
        yield override
        return
    binary = shutil.which("redis-server")
    if binary is None:
        yield SHARED_REDIS
        return
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - our own argument list
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        import redis

        client = redis.Redis.from_url(url)
        wait_until(lambda: bool(client.ping()), 10, "the private redis-server")
        client.close()
        yield url
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@dataclass
class Processes:
    """Child processes of one run, each in its own group, logs under `workdir`."""

    workdir: Path
    env: dict[str, str]
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, name: str, *argv: str, extra_env: dict[str, str] | None = None) -> int:
        log = (self.workdir / f"{name}.log").open("ab")
        process = subprocess.Popen(  # noqa: S603 - our own argument list
            list(argv),
            env={**self.env, **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.started.append(process)
        return process.pid

    def steady(self, name: str, *args: str, extra_env: dict[str, str] | None = None) -> int:
        steady = str(Path(sys.executable).with_name("steady"))
        return self.start(name, steady, *args, extra_env=extra_env)

    def stop(self, pid: int) -> None:
        for process in self.started:
            if process.pid == pid:
                _stop(process)

    def stop_all(self) -> None:
        for process in reversed(self.started):
            _stop(process)
        self.started.clear()

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.workdir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def rss_mib(pid: int) -> float | None:
    """Resident memory of one process, from /proc (Linux)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def children(pid: int) -> list[int]:
    """Direct children of `pid` (a Celery main process's pool)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after the ')'.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


@dataclass
class RssSampler:
    """Peak and first/last RSS per worker process (the pool's children and the parent)."""

    parents: list[int]
    peak: dict[int, float] = field(default_factory=dict)
    first: dict[int, float] = field(default_factory=dict)
    last: dict[int, float] = field(default_factory=dict)
    role: dict[int, str] = field(default_factory=dict)

    def sample(self) -> None:
        for parent in self.parents:
            pids = [(parent, "main"), *((child, "child") for child in children(parent))]
            for pid, role in pids:
                value = rss_mib(pid)
                if value is None:
                    continue
                self.role[pid] = role
                self.first.setdefault(pid, value)
                self.last[pid] = value
                self.peak[pid] = max(self.peak.get(pid, 0.0), value)

    def summary(self) -> dict[str, object]:
        pool = [pid for pid, role in self.role.items() if role == "child"]
        return {
            "peak_mib_per_child": [round(self.peak[pid], 1) for pid in pool],
            "peak_mib_main": [
                round(self.peak[pid], 1) for pid, role in self.role.items() if role == "main"
            ],
            "first_mib_per_child": [round(self.first[pid], 1) for pid in pool],
            "last_mib_per_child": [round(self.last[pid], 1) for pid in pool],
            "children_seen": len(pool),
        }


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="steady-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process, from /proc (Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def tree_cpu_seconds(parent: int) -> float:
    """CPU time of a process and its direct children (a Celery or uvicorn pool)."""
    return cpu_seconds(parent) + sum(cpu_seconds(child) for child in children(parent))
