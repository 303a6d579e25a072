"""Alembic revisions: they build exactly the tables the models describe, on SQLite
and PostgreSQL, and step down and up again cleanly."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from service.storage.db import alembic_config, current_revision, get_engine, upgrade
from service.storage.models import Base

LATEST = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def test_migrations_at_head_match_the_models(database_url: str) -> None:
    with get_engine(database_url).connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_migrations_step_down_to_nothing_and_back_up(database_url: str) -> None:
    head = current_revision(database_url)
    command.downgrade(alembic_config(database_url), "base")
    assert current_revision(database_url) is None
    upgrade(database_url)
    assert current_revision(database_url) == head == LATEST


def test_the_claim_order_has_its_own_index(database_url: str) -> None:
    """The dispatcher's ORDER BY is the index's order (no sort of the whole backlog)."""
    from sqlalchemy import inspect

    indexes = {
        ix["name"]: ix["column_names"]
        for ix in inspect(get_engine(database_url)).get_indexes("messages")
    }
    assert indexes["ix_messages_claim"] == ["priority", "scheduled_for", "id"]
    assert "ix_messages_due" not in indexes


def test_the_decision_log_time_index_is_brin_on_postgresql(database_url: str) -> None:
    """Migration 0010: `decisions.at` keeps an index; on PostgreSQL a BRIN one (the log
    is written in time order), and stepping down brings the b-tree back."""
    from sqlalchemy import inspect, text

    def definition() -> str:
        engine = get_engine(database_url)
        if engine.dialect.name != "postgresql":
            indexes = {
                ix["name"]: ix["column_names"] for ix in inspect(engine).get_indexes("decisions")
            }
            return "btree (at)" if indexes.get("ix_decisions_at") == ["at"] else ""
        with engine.connect() as connection:
            found = connection.execute(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_decisions_at'")
            ).scalar_one()
        return str(found).split(" USING ")[1]

    postgresql = get_engine(database_url).dialect.name == "postgresql"
    assert definition() == ("brin (at)" if postgresql else "btree (at)")
    command.downgrade(alembic_config(database_url), "0009")
    assert definition() == "btree (at)"
    upgrade(database_url)
    assert definition() == ("brin (at)" if postgresql else "btree (at)")
