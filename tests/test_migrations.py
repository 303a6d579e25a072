"""Alembic revisions: they build exactly the tables the models describe, on SQLite
and PostgreSQL, and step down and up again cleanly."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from service.db import alembic_config, current_revision, get_engine, upgrade
from service.models import Base


def test_migrations_at_head_match_the_models(database_url: str) -> None:
    with get_engine(database_url).connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_migrations_step_down_to_nothing_and_back_up(database_url: str) -> None:
    head = current_revision(database_url)
    command.downgrade(alembic_config(database_url), "base")
    assert current_revision(database_url) is None
    upgrade(database_url)
    assert current_revision(database_url) == head == "0002"
