"""CLI input found wrong by the acceptance pass: a bad file gets a clear error, not a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from service.cli.main import app
from tests.cli.operator import runner


def test_import_of_a_file_that_is_not_utf8_names_it_and_exits_2(
    db: str,
    tmp_path: Path,
) -> None:
    bad = tmp_path / "people.csv"
    bad.write_bytes(b"\xff\xfe\x00phone,email,timezone\n+12125550101,,\n")
    result = runner.invoke(app, ["subscribers", "import", str(bad)])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "people.csv: not UTF-8 text" in result.output


def test_messages_limit_past_a_database_integer_is_a_usage_error(
    db: str,
) -> None:
    result = runner.invoke(app, ["messages", "--json", "--limit", str(2**70)])
    assert result.exit_code == 2
    assert not isinstance(result.exception, OverflowError)


def test_messages_to_takes_any_number_phonenumbers_parses_not_only_mobiles(
    db: str,
) -> None:
    # A toll-free number can never have subscribed, so the log for it is empty, not an error.
    result = runner.invoke(app, ["messages", "--json", "--to", "1 (800) 555-0199"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().replace("\n", "") == "[]"


@pytest.mark.parametrize("command", [["tick"], ["stats", "--json"], ["messages"]])
def test_a_command_on_an_unmigrated_database_says_so_in_one_line(
    cli_env: pytest.MonkeyPatch,
    tmp_path: Path,
    command: list[str],
) -> None:
    # A real process: main() is what the console script runs, and the commands set up
    # logging for their process, which must not leak into the other tests.
    cli_env.setenv("STEADY_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    done = subprocess.run(
        [sys.executable, "-c", "from service.cli.main import main; main()", *command],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "no such table" in done.stderr
    assert "steady db upgrade" in done.stderr
    assert "Traceback" not in done.stderr
