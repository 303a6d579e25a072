"""Engines, sessions and migrations.

One engine per process and URL, reused; sessions are short and explicit. The
schema comes only from Alembic revisions (`upgrade`), never from create_all, so
SQLite and PostgreSQL run the very same migrations.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# SQLite waits this long for a writer instead of failing at once: `steady run`
# has the web server and the ticker writing from two threads.
SQLITE_BUSY_TIMEOUT_MS = 15_000
# A PostgreSQL server that does not answer a connection attempt in this long is
# down for this task's purposes (libpq's default is to wait indefinitely).
POSTGRES_CONNECT_TIMEOUT_SECONDS = 10
# A database URL option for psycopg itself (see _driver_options).
PREPARE_THRESHOLD = "prepare_threshold"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain `postgresql://` URLs (the driver we ship)."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _driver_options(url: str) -> tuple[str, dict[str, Any]]:
    """Options in the URL's query that are psycopg's, not libpq's, taken out of it.

    `prepare_threshold=none` turns off server-side prepared statements, which PgBouncer
    in transaction mode cannot follow from one server connection to the next (psycopg
    prepares a query after its 5th run on a connection by default). A number sets
    psycopg's threshold instead.
    """
    parsed = make_url(url)
    if PREPARE_THRESHOLD not in parsed.query:
        return url, {}
    raw = parsed.query[PREPARE_THRESHOLD]
    value = raw if isinstance(raw, str) else raw[-1]
    threshold = None if value.strip().lower() in ("none", "off", "") else int(value)
    stripped = parsed.difference_update_query([PREPARE_THRESHOLD])
    return stripped.render_as_string(hide_password=False), {PREPARE_THRESHOLD: threshold}


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    """The process's engine for `url` (pooled connections are reused)."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    url, options = _driver_options(url)
    # After a PostgreSQL restart every pooled connection is dead: pre-ping swaps
    # each for a fresh one at checkout, so a worker recovers on its next task
    # (tests/system/faults/test_server_restarts.py restarts the server under real
    # workers). libpq waits forever for a server that never answers a connect: the
    # timeout turns that into an error for the task, and the next task tries again.
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_SECONDS, **options},
    )


def session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(url), expire_on_commit=False)


def read_session_factory(database_url: str, replica_url: str | None) -> sessionmaker[Session]:
    """Sessions for read-only work (reports, /metrics, exports, evaluation).

    With STEADY_DATABASE_REPLICA_URL set they go to the replica, so a long report
    never holds a snapshot open on the primary, where it would keep vacuum from
    cleaning up behind the dispatcher's SKIP LOCKED queue. Unset: the primary.
    """
    return session_factory(replica_url or database_url)


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Alembic's ini interpolation treats % specially.
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema at `url` to `revision` (Alembic)."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with get_engine(url).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
