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
