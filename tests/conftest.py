"""Shared fixtures: real databases, fresh for every test.

The quick run (`make test` on any machine) uses SQLite and runs Celery eagerly.
Server-backed tests read STEADY_TEST_POSTGRES_URL / STEADY_TEST_REDIS_URL and
skip when they are unset; with STEADY_REQUIRE_SERVERS=1 (`.ci/run`) an unset or
unreachable server fails the run instead of skipping.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from service.devtools.servers import scratch_postgres_database
from service.storage.db import get_engine, upgrade
from service.storage.models import Base

# The crisis model's cache (service/replies/crisis_cache.py) lives in this run's own
# folder, shared with the processes the tests start: no run reads what another left.
if "STEADY_CACHE_DIR" not in os.environ:
    import atexit
    import tempfile

    os.environ["STEADY_CACHE_DIR"] = tempfile.mkdtemp(prefix="steady-test-cache-")
    atexit.register(shutil.rmtree, os.environ["STEADY_CACHE_DIR"], ignore_errors=True)

POSTGRES_URL = os.environ.get("STEADY_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("STEADY_TEST_REDIS_URL")
REQUIRE_SERVERS = os.environ.get("STEADY_REQUIRE_SERVERS") == "1"


def _server_missing(what: str, variable: str) -> None:
    message = f"{what} not configured: set {variable}"
    if REQUIRE_SERVERS:
        pytest.fail(message + " (STEADY_REQUIRE_SERVERS=1: servers are required)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A scratch PostgreSQL database for this test session, migrated once, dropped after."""
    if not POSTGRES_URL:
        _server_missing("PostgreSQL", "STEADY_TEST_POSTGRES_URL")
    assert POSTGRES_URL is not None
    with ExitStack() as stack:
        try:
            url = stack.enter_context(scratch_postgres_database(POSTGRES_URL, "steady_test"))
        except OperationalError as exc:  # the server is not there (any other error is loud)
            if REQUIRE_SERVERS:
                pytest.fail(f"PostgreSQL unreachable at {POSTGRES_URL}: {exc}", pytrace=False)
            pytest.skip(f"PostgreSQL unreachable: {exc}")
        yield url
    get_engine.cache_clear()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file; each test gets a copy (migrating once is the slow part)."""
    path = tmp_path_factory.mktemp("template") / "steady.db"
    upgrade(f"sqlite:///{path}")
    get_engine(f"sqlite:///{path}").dispose()
    return path


def _truncate(url: str) -> None:
    engine = get_engine(url)
    with engine.begin() as connection:
        names = ", ".join(table.name for table in Base.metadata.sorted_tables)
        connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """A freshly migrated, empty database: SQLite always, PostgreSQL when configured."""
    if request.param == "sqlite":
        path = tmp_path / "steady.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_server")
    _truncate(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "steady.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    _truncate(postgres_server)
    return postgres_server


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database index of our own, flushed before and after."""
    if not REDIS_URL:
        _server_missing("Redis", "STEADY_TEST_REDIS_URL")
    assert REDIS_URL is not None
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        if REQUIRE_SERVERS:
            pytest.fail(f"Redis unreachable at {REDIS_URL}: {exc}", pytrace=False)
        pytest.skip(f"Redis unreachable: {exc}")
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
    client.close()
