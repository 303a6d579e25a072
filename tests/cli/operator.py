"""Running the `steady` command as an operator does, and reading what it left in the database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import Result
from sqlalchemy import func, select
from typer.testing import CliRunner

from service.addresses import AddressHasher
from service.cli.main import app
from service.storage.db import session_factory

SECRET = "operator-test-secret-key-0123456789abcdef"
HASHER = AddressHasher(SECRET)
HEADER = "phone,email,timezone,consent_evidence\n"
runner = CliRunner()


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args), catch_exceptions=False)


def write_csv(tmp_path: Path, body: str, name: str = "people.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def count(url: str, model: Any, *where: Any) -> int:
    with session_factory(url)() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)
