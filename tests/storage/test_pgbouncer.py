"""Steady through PgBouncer in transaction mode (a real pgbouncer, on a free port, in
front of the test PostgreSQL): the planner's pass, the dispatcher's claim with
FOR UPDATE SKIP LOCKED and the streamed message log work with `?prepare_threshold=none`;
without it psycopg's server-side prepared statements collide between clients."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DBAPIError

from service.devtools.servers import ServerUnavailable, free_port, wait_until
from service.reporting.message_log import LogFilter, iter_message_log
from service.storage.db import get_engine, normalise_url, session_factory
from service.storage.models import Message
from tests.support.world import Harness, make_settings, plan_welcome_nudges

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

REQUIRE = os.environ.get("STEADY_REQUIRE_SERVERS") == "1"


class PgBouncer:
    """pgbouncer in transaction mode with ONE server connection: every client shares it,
    so whatever a client leaves on a server connection, the next one meets."""

    def __init__(self, postgres_url: str) -> None:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not Path(binary).exists():
            raise ServerUnavailable("pgbouncer not installed (Debian package `pgbouncer`)")
        self.binary = binary
        self.port = free_port()
        rest = postgres_url.split("://", 1)[1]
        credentials, _, location = rest.rpartition("@")
        hostport, _, self.database = location.partition("/")
        host, _, port = hostport.partition(":")
        user = credentials.split(":")[0] or "postgres"
        self.home = Path(tempfile.mkdtemp(prefix="steady-pgbouncer-"))
        (self.home / "userlist.txt").write_text(f'"{user}" ""\n')
        (self.home / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"steady = host={host} port={port or 5432} dbname={self.database} user={user}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.home / 'userlist.txt'}\n"
            "pool_mode = transaction\ndefault_pool_size = 1\nmax_client_conn = 100\n"
            f"logfile = {self.home / 'pgbouncer.log'}\npidfile = {self.home / 'pgbouncer.pid'}\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
        )
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # pgbouncer refuses to run as root
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.home, "postgres", "postgres")
            for path in self.home.iterdir():
                shutil.chown(path, "postgres", "postgres")
        self.process: subprocess.Popen[bytes] | None = None
        self.user = user

    def url(self, query: str = "") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/steady{query}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [*self.as_user, self.binary, str(self.home / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        engine = get_engine(self.url("?prepare_threshold=none"))

        def answers() -> bool:
            try:
                with engine.connect() as connection:
                    return connection.execute(text("SELECT 1")).scalar() == 1
            except DBAPIError:
                return False

        wait_until(answers, 30, f"pgbouncer on port {self.port}", interval=0.2)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture
def bouncer(postgres_url: str) -> Iterator[PgBouncer]:
    try:
        server = PgBouncer(postgres_url)
    except ServerUnavailable as exc:
        if REQUIRE:
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))
    server.start()
    try:
        yield server
    finally:
        for url in (server.url("?prepare_threshold=none"), server.url()):
            get_engine(url).dispose()
        server.stop()


def test_plan_claim_and_stream_through_pgbouncer_in_transaction_mode(
    bouncer: PgBouncer, postgres_url: str
) -> None:
    url = bouncer.url("?prepare_threshold=none")
    engine = get_engine(url)
    with engine.connect() as connection:
        assert connection.connection.driver_connection.prepare_threshold is None  # type: ignore[union-attr]
    now = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)  # noon in New York
    settings = make_settings(url, STEADY_DISPATCH_BATCH_SIZE="5")
    phones = [f"+1212555{index:04d}" for index in range(40)]
    ids = plan_welcome_nudges(settings, phones, now, "America/New_York")

    # Two dispatchers at once, each with its own connections, claiming with SKIP LOCKED
    # through the one shared server connection, many times each (past psycopg's
    # default of preparing a statement on its 5th run).
    harnesses = [Harness(settings) for _ in range(2)]
    failures: list[BaseException] = []

    def drain(harness: Harness) -> None:
        try:
            for _ in range(12):
                harness.runtime.dispatch(now)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=drain, args=(h,)) for h in harnesses]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    sent = [m.to for h in harnesses for m in h.sms.sent]
    assert sorted(sent) == sorted(phones), "each message once, none lost"
    with session_factory(postgres_url)() as session:
        statuses = set(session.scalars(select(Message.status).where(Message.id.in_(ids))))
    assert statuses == {"sent"}

    # The planner's pass again, and the message log's server-side cursor.
    for _ in range(8):
        harnesses[0].runtime.plan(now + timedelta(hours=4))
    rows = list(iter_message_log(session_factory(url), LogFilter(status="sent")))
    assert len(rows) == len(phones)


def test_without_the_option_prepared_statements_collide(bouncer: PgBouncer) -> None:
    """Why the option exists: psycopg prepares a query on its 5th run and names it
    `_pg3_0`; a second client through the same server connection meets that name."""
    url = bouncer.url()
    engines = [create_engine(normalise_url(url)) for _ in range(2)]
    errors: list[str] = []
    try:
        connections = [engine.connect() for engine in engines]
        for _ in range(8):
            for connection in connections:
                try:
                    connection.execute(text("SELECT count(*) FROM messages")).scalar()
                    connection.commit()
                except DBAPIError as exc:
                    errors.append(str(exc.orig))
                    connection.rollback()
        for connection in connections:
            connection.close()
    finally:
        for engine in engines:
            engine.dispose()
    assert any("prepared statement" in error for error in errors), errors
