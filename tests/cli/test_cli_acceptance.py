"""CLI input found wrong by the acceptance pass: a bad file gets a clear error, not a traceback."""

from __future__ import annotations

from pathlib import Path

from service.cli.main import app
from tests.cli.test_operator_cli import (  # the fixtures too: same CLI environment
    cli_env,  # noqa: F401
    db,  # noqa: F401
    runner,
)


def test_import_of_a_file_that_is_not_utf8_names_it_and_exits_2(
    db: str,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    bad = tmp_path / "people.csv"
    bad.write_bytes(b"\xff\xfe\x00phone,email,timezone\n+12125550101,,\n")
    result = runner.invoke(app, ["subscribers", "import", str(bad)])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "people.csv: not UTF-8 text" in result.output
