"""STEADY_DATABASE_REPLICA_URL: reports, /metrics and exports read from the replica
engine, and nothing else does. The "replica" here is the same database under a second
URL (so a second engine); statements are counted per engine."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from typer.testing import CliRunner

from service.cli.main import app
from service.storage.db import get_engine
from tests.support.world import Harness, make_settings

ADMIN_TOKEN = "replica-test-admin-token-0123456789"


def replica_of(url: str) -> str:
    """The same database under another URL: a harmless option makes a second engine."""
    if url.startswith("sqlite"):
        return url + "?timeout=20"
    return url + "?application_name=steady_replica"


@pytest.fixture
def counted(database_url: str) -> Iterator[tuple[str, str, Counter[str]]]:
    replica = replica_of(database_url)
    counts: Counter[str] = Counter()
    listeners = []
    for name, url in (("primary", database_url), ("replica", replica)):

        def count(*_args: Any, _name: str = name) -> None:
            counts[_name] += 1

        engine = get_engine(url)
        event.listen(engine, "before_cursor_execute", count)
        listeners.append((engine, count))
    yield database_url, replica, counts
    for engine, listener in listeners:
        event.remove(engine, "before_cursor_execute", listener)


def test_reports_metrics_and_exports_read_from_the_replica(
    counted: tuple[str, str, Counter[str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    primary, replica, counts = counted
    settings = make_settings(
        primary, STEADY_DATABASE_REPLICA_URL=replica, STEADY_ADMIN_TOKEN=ADMIN_TOKEN
    )
    harness = Harness(settings)
    signup = harness.client.post("/subscribe", json={"phone": "+12125550142", "consent": True})
    assert signup.status_code == 202
    writes = counts["primary"]
    assert writes > 0, "a signup writes to the primary"
    assert counts["replica"] == 0

    assert harness.client.get("/metrics").status_code == 200
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert harness.client.get("/admin/api/stats", headers=auth).status_code == 200
    monkeypatch.chdir(tmp_path)
    for name, value in (
        ("STEADY_DATABASE_URL", primary),
        ("STEADY_DATABASE_REPLICA_URL", replica),
        ("STEADY_SECRET_KEY", settings.secret_key.get_secret_value()),
    ):
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    for command in (["messages", "--json"], ["stats", "--json"], ["subscribers", "export"]):
        result = runner.invoke(app, command, catch_exceptions=False)
        assert result.exit_code == 0, (command, result.output)
        if command[0] != "stats":
            assert "+12125550142" in result.stdout, command

    assert counts["replica"] >= 5
    assert counts["primary"] == writes, "no read went to the primary"


def test_without_a_replica_reads_go_to_the_primary(
    counted: tuple[str, str, Counter[str]],
) -> None:
    primary, _replica, counts = counted
    harness = Harness(make_settings(primary))
    assert harness.client.get("/metrics").status_code == 200
    assert counts["primary"] > 0
    assert counts["replica"] == 0
