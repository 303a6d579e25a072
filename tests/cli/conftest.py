"""The operator's environment (settings from variables) and a database for the `steady` command."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.settings import SECRET_FIELDS, Settings
from tests.cli.operator import SECRET


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No setting leaks in from the environment or a .env file; the secret is ours."""
    for info in Settings.model_fields.values():
        for name in getattr(info.validation_alias, "choices", []):
            monkeypatch.delenv(str(name), raising=False)
    for name in (f"{secret}_FILE" for secret in SECRET_FIELDS.values()):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STEADY_SECRET_KEY", SECRET)
    return monkeypatch


@pytest.fixture
def db(cli_env: pytest.MonkeyPatch, database_url: str) -> str:
    cli_env.setenv("STEADY_DATABASE_URL", database_url)
    return database_url
