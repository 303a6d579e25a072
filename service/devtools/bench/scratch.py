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
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from service.devtools.servers import (
    PrivateRedis,
    ServerUnavailable,
    scratch_postgres_database,
    stop_process_group,
)
from service.storage.db import get_engine, normalise_url, upgrade

DEFAULT_POSTGRES_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
SHARED_REDIS = "redis://127.0.0.1:6379/14"


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
def scratch_database(
    override: str | None, workdir: Path, name: str = "steady-bench"
) -> Iterator[str]:
    """A migrated, empty database for one run; dropped (or deleted) afterwards.

    `override` (STEADY_BENCH_DATABASE_URL) names the server to use: for PostgreSQL
    a fresh database is created on it, for SQLite the file must not exist yet
    (without one, `name` names a new file in the run's work directory).
    """
    server = override
    if server is None:
        server = DEFAULT_POSTGRES_SERVER if _postgres_reachable(DEFAULT_POSTGRES_SERVER) else None
    if server is not None and not server.startswith("sqlite"):
        with scratch_postgres_database(server, "steady_bench") as url:
            yield url
        return
    path = Path(make_url(server).database or "") if server else workdir / f"{name}.sqlite3"
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


@contextlib.contextmanager
def scratch_redis(override: str | None, workdir: Path) -> Iterator[str]:
    """A private Redis for the broker (or STEADY_BENCH_BROKER_URL, used as is)."""
    if override:
        yield override
        return
    try:
        redis = PrivateRedis(workdir / "redis")
    except ServerUnavailable:
        yield SHARED_REDIS  # no redis-server binary here: a queue of our own on the shared one
        return
    redis.start()
    try:
        yield redis.url()
    finally:
        redis.stop()


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
            if process.pid == pid and process.returncode is None:
                stop_process_group(process, grace_seconds=10)

    def stop_all(self) -> None:
        for process in reversed(self.started):
            if process.returncode is None:
                stop_process_group(process, grace_seconds=10)
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


# Below this share of one core a process tree counts as idle (a uvicorn pool at rest).
IDLE_CORE_SHARE = 0.1


def wait_until_idle(parent: int, *, interval: float = 0.5, timeout: float = 60.0) -> float:
    """Wait until a process tree uses less than IDLE_CORE_SHARE of a core over
    `interval`; returns the seconds waited (at most `timeout`).

    A started `steady web` answers /healthz while each worker still trains the
    crisis model in the background (3-5 s of CPU each): a phase timed from then
    would count that training as its own work.
    """
    started = time.monotonic()
    before = tree_cpu_seconds(parent)
    while time.monotonic() - started < timeout:
        time.sleep(interval)
        after = tree_cpu_seconds(parent)
        if after - before < IDLE_CORE_SHARE * interval:
            break
        before = after
    return time.monotonic() - started
