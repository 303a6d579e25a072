"""Throwaway servers and processes, for the tests and the bench (never production).

One home for what both need (ARCHITECTURE.md "Tests mirror the parts"): a free
port, waiting for a condition, stopping a process with its whole group, a
scratch database on a PostgreSQL server, and servers of one's own: a private
redis-server and a private PostgreSQL cluster on free ports, which a test may
crash, flush and restart without disturbing anyone. Everything here removes what
it made.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from service.storage.db import get_engine, normalise_url, upgrade

# Generous: two cores shared with other test runs.
SERVER_START_SECONDS = 60.0


class ServerUnavailable(RuntimeError):
    """The server's binaries are not installed here."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, *, interval: float = 0.1
) -> None:
    """Return once `check()` is true; a check that raises counts as not yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(Exception):
            if check():
                return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def stop_process_group(process: subprocess.Popen[bytes], grace_seconds: float = 5.0) -> None:
    """SIGTERM the process's whole group (a Celery pool's children too), then SIGKILL.

    The process must have been started with `start_new_session=True`, so that its
    group id is its pid and the group holds nothing of ours but it and its children.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with suppress(ProcessLookupError):  # the group is gone already
            os.killpg(process.pid, sig)
        if sig == signal.SIGTERM:
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=grace_seconds)
    # SIGKILL went to any child that outlived the leader; reap the leader itself.
    process.wait()


@contextmanager
def scratch_postgres_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new, migrated database on the server at `server_url`; dropped afterwards.

    `server_url` names any database on the server (it is used to create the new
    one); the new database is called `<prefix>_<random>`.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(normalise_url(server_url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception:
        admin.dispose()
        raise
    url = make_url(normalise_url(server_url)).set(database=name)
    rendered = url.render_as_string(hide_password=False)
    try:
        upgrade(rendered)
        yield rendered
    finally:
        get_engine(rendered).dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class PrivateRedis:
    """A redis-server of our own on a free port, without persistence."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServerUnavailable("redis-server not found")
        self.binary = binary
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self) -> None:
        self.starts += 1
        log = (self.workdir / f"redis-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(  # noqa: S603 - our own argument list
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_until(self._pings, SERVER_START_SECONDS, f"private Redis on port {self.port}")

    def _pings(self) -> bool:
        import redis

        try:
            with closing(self.client()) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def crash(self) -> None:
        """kill -9: connections drop and, without persistence, every key is gone."""
        if self.process is not None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process = None

    def flushall(self) -> None:
        with closing(self.client()) as client:
            client.flushall()

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process, grace_seconds=5)
            self.process = None


def _postgres_bindir() -> Path | None:
    def version(initdb: str) -> int:
        name = Path(initdb).parent.parent.name  # /usr/lib/postgresql/<version>/bin/initdb
        return int(name) if name.isdigit() else 0

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PrivatePostgres:
    """A throwaway PostgreSQL cluster on a free port (initdb, pg_ctl), trust auth.

    As root, the cluster belongs to the `postgres` user (PostgreSQL refuses to run
    as root); otherwise to whoever runs the tests.
    """

    @staticmethod
    def check_installed() -> Path:
        """The server binaries' folder; ServerUnavailable if they (or, as root,
        the `postgres` user to run them) are missing."""
        bindir = _postgres_bindir()
        if bindir is None:
            raise ServerUnavailable("PostgreSQL server binaries (initdb, pg_ctl) not found")
        if os.geteuid() == 0:
            import pwd

            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise ServerUnavailable("no `postgres` user to run PostgreSQL as") from None
        return bindir

    def __init__(self, workdir: Path) -> None:
        self.bindir = self.check_installed()
        self.port = free_port()
        self.workdir = workdir  # the server's log is copied here when it is removed
        # Not under pytest's tmp_path: its parents are private to root, and the
        # server runs as `postgres`.
        self.home = Path(tempfile.mkdtemp(prefix="steady-faults-pg-"))
        self.datadir = self.home / "data"
        self.logfile = self.home / "postgres.log"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.home, "postgres", "postgres")
        self.running = False

    def _run(self, *args: str, timeout: float = SERVER_START_SECONDS) -> None:
        result = subprocess.run(  # noqa: S603 - our own argument list
            [*self.as_user, *args],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({result.returncode}): "
                + (result.stderr or result.stdout).decode(errors="replace")[-2000:]
            )

    def init(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.datadir),
            "--auth=trust",
            "--username=postgres",
            "--no-sync",
            "--encoding=UTF8",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off -c max_connections=60"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-l",
            str(self.logfile),
            "-o",
            options,
            "-w",
            "-t",
            str(int(SERVER_START_SECONDS)),
            "start",
        )
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "stop")
        self.running = False

    def remove(self) -> None:
        """Stop the server if it runs, keep its log in `workdir`, delete the cluster."""
        if self.running:
            with suppress(Exception):
                self.stop("immediate")
        if self.logfile.exists():
            self.workdir.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.logfile, self.workdir / "postgres.log")
        shutil.rmtree(self.home, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        admin = create_engine(
            self.url().replace("postgresql://", "postgresql+psycopg://", 1),
            isolation_level="AUTOCOMMIT",
        )
        try:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        return self.url(name)


@contextmanager
def private_postgres_database(workdir: Path) -> Iterator[tuple[PrivatePostgres, str]]:
    """A private cluster with one migrated database; the cluster is removed after."""
    cluster = PrivatePostgres(workdir)
    url: str | None = None
    try:
        cluster.init()
        cluster.start()
        url = cluster.create_database("steady_faults")
        upgrade(url)
        yield cluster, url
    finally:
        if url is not None:
            get_engine(url).dispose()
        cluster.remove()
