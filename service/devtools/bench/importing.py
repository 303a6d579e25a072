"""The import phase of `steady bench`: the real `steady subscribers import` of a big file.

    python -m service.devtools.bench.importing --rows 100000 [--json]

runs this phase alone in a scratch database; `steady bench` runs it last, after the
sending phases (the confirmations it queues must not reach their worker).

The file is realistic (`service.devtools.bench.import_file`): several countries'
mobiles in the formats people type, emails, zones, consent evidence, bad rows and
repeated ones. It is imported by the command an operator runs, as a subprocess, so
its validating helper processes, its connection and its output are the real ones.

Measured: rows/s over the whole command, and after its start-up (the same command
on a file with only the header: interpreter, imports, settings); the CPU (user +
system) of the importer, of its helpers (its children, read from /proc while they
run and from the importer's reaped-children total once they end), and of the
PostgreSQL backends serving the scratch database when the server runs on this
machine (read from /proc every `POLL_SECONDS`; the last poll's tail is missed, so
that figure is a slight underestimate). Checked: every bad row named on stderr with
its line and field, and the database holding exactly the people, channels and
confirmations the file's valid rows make.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from service.devtools.bench.import_file import ImportFile, write_import_file
from service.devtools.bench.scratch import children, cpu_seconds
from service.devtools.servers import stop_process_group
from service.storage.models import Channel, Message, Subscriber

POLL_SECONDS = 0.1
IMPORT_TIMEOUT_SECONDS = 3600.0
IDLE_CORES = 2  # the machine PERFORMANCE.md describes: what the CPU per row implies there
_NAMED = re.compile(r"^import\.csv: line (\d+): (\w+): ", re.MULTILINE)
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class _Run:
    """One `steady subscribers import` and the CPU of what took part."""

    seconds: float = 0.0
    returncode: int = 0
    stdout: str = ""
    stderr: str = ""
    cpu_total: float = 0.0  # the importer and its reaped children (wait4)
    cpu_helpers: float = 0.0
    cpu_postgres: float | None = None
    load_average: str = ""
    helper_pids: set[int] = field(default_factory=set)  # the validating ones


def import_phase(
    sessions: sessionmaker[Session],
    env: dict[str, str],
    workdir: Path,
    rows: int,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Import a realistic file of `rows` rows with the real command; figures and checks."""
    progress(f"import: writing {rows:,} rows")
    expected = write_import_file(workdir / "import.csv", rows)
    header_only = workdir / "import-header.csv"
    header_only.write_text(expected.path.read_text().split("\n", 1)[0] + "\n")
    before = _counts(sessions)
    startup = _run_import(sessions, env, header_only)
    progress(f"import: steady subscribers import ({rows:,} rows)")
    run = _run_import(sessions, env, expected.path)
    after = _counts(sessions)
    added = {name: after[name] - before[name] for name in after}
    return _figures(expected, run, startup, added)


def _figures(
    expected: ImportFile, run: _Run, startup: _Run, added: dict[str, int]
) -> dict[str, Any]:
    rows = expected.rows
    importing = max(run.seconds - startup.seconds, 1e-6)
    importer = run.cpu_total - run.cpu_helpers - startup.cpu_total

    def per_row(seconds: float | None) -> float | None:
        return None if seconds is None else round(1e6 * seconds / rows, 1) if rows else None

    cpu = {
        "importer": per_row(importer),
        "helpers": per_row(run.cpu_helpers),
        "postgresql": per_row(run.cpu_postgres),
    }
    total = sum(value for value in cpu.values() if value is not None)
    named = [(int(line), name) for line, name in _NAMED.findall(run.stderr)]
    wanted = {
        "subscribers": expected.subscribers,
        "channels": expected.channels,
        "confirmations": expected.pending,
    }
    return {
        "rows": rows,
        "valid": rows - expected.bad,
        "bad": expected.bad,
        "repeated": expected.repeated,
        "imported": expected.imported,
        "seconds": round(run.seconds, 2),
        "startup_seconds": round(startup.seconds, 2),
        "per_s": round(rows / importing),
        "per_s_whole_command": round(rows / run.seconds) if run.seconds else None,
        "cpu_us_per_row": {**cpu, "total": round(total, 1)},
        "startup_cpu_seconds": round(startup.cpu_total, 2),
        "helpers": len(run.helper_pids),
        # What the CPU per row allows on two idle cores (PERFORMANCE.md's machine).
        "per_s_on_2_idle_cores": round(IDLE_CORES * 1e6 / total) if total else None,
        "load_average": run.load_average,
        "summary": run.stdout.strip().splitlines()[-1] if run.stdout.strip() else "",
        "check": {
            "exit_code": run.returncode,
            "bad_rows_named": len(named),
            "added": added,
            "expected": wanted,
            "ok": run.returncode == (1 if expected.bad else 0)
            and tuple(named) == expected.bad_fields
            and added == wanted,
        },
    }


def _counts(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions() as session:
        return {
            name: session.scalar(select(func.count()).select_from(model)) or 0
            for name, model in (
                ("subscribers", Subscriber),
                ("channels", Channel),
                ("confirmations", Message),
            )
        }


def _run_import(sessions: sessionmaker[Session], env: dict[str, str], path: Path) -> _Run:
    """`steady subscribers import PATH`, watched until it ends."""
    steady = str(Path(sys.executable).with_name("steady"))
    run = _Run(load_average=Path("/proc/loadavg").read_text().strip())
    out, err = path.with_suffix(".out"), path.with_suffix(".err")
    postgres = _PostgresCpu(sessions)
    with out.open("wb") as stdout, err.open("wb") as stderr:
        started = time.monotonic()
        process = subprocess.Popen(  # noqa: S603 - our own argument list
            [steady, "subscribers", "import", str(path)],
            env=env,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
        helpers: dict[int, float] = {}  # every child: the pool's, and its resource tracker
        validating: set[int] = set()
        reaped_children = 0.0
        try:
            while True:
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() - started > IMPORT_TIMEOUT_SECONDS:
                    raise TimeoutError("bench: the import did not finish")
                reaped_children = max(reaped_children, _reaped_children_cpu(process.pid))
                for child in children(process.pid):
                    helpers[child] = cpu_seconds(child)
                    if child not in validating and _is_pool_worker(child):
                        validating.add(child)
                postgres.sample()
                time.sleep(POLL_SECONDS)
        except BaseException:
            stop_process_group(process, grace_seconds=5)
            raise
        run.seconds = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
    postgres.sample()
    run.returncode = process.returncode
    run.cpu_total = usage.ru_utime + usage.ru_stime
    run.cpu_helpers = max(reaped_children, sum(helpers.values()))
    run.helper_pids = validating
    run.cpu_postgres = postgres.total()
    run.stdout = out.read_text(errors="replace")
    run.stderr = err.read_text(errors="replace")
    return run


def _is_pool_worker(pid: int) -> bool:
    """A validating helper, not multiprocessing's resource tracker (also a child)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"resource_tracker" not in command


def _reaped_children_cpu(pid: int) -> float:
    """CPU of the children `pid` has waited for (cutime + cstime in /proc/PID/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[13]) + int(fields[14])) / _TICKS


class _PostgresCpu:
    """CPU of the backends serving this database, when the server runs on this machine."""

    QUERY = text(
        "SELECT pid FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.session = sessions()
        own = int(self.session.scalar(text("SELECT pg_backend_pid()")) or 0)
        self.local = (
            self.session.get_bind().dialect.name == "postgresql"
            and Path(f"/proc/{own}/stat").exists()
        )
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.sample()
        self.first = dict(self.last)  # what the backends already open had spent before

    def sample(self) -> None:
        if not self.local:
            return
        pids = list(self.session.scalars(self.QUERY))
        self.session.rollback()  # no snapshot held open between polls
        for pid in pids:
            seconds = cpu_seconds(pid)
            if seconds:
                self.last[pid] = seconds

    def total(self) -> float | None:
        self.session.close()
        if not self.local:
            return None
        return sum(seconds - self.first.get(pid, 0.0) for pid, seconds in self.last.items())


def main() -> None:
    """This phase alone, in a scratch database (`steady bench` runs it after the others)."""
    from service.devtools.bench.run import scratch_environment
    from service.devtools.bench.scratch import scratch_database
    from service.storage.db import session_factory

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="steady-bench-import-") as work,
        scratch_database(os.environ.get("STEADY_BENCH_DATABASE_URL") or None, Path(work)) as url,
    ):
        result = import_phase(
            session_factory(url),
            scratch_environment(url),
            Path(work),
            args.rows,
            lambda line: print(f"bench: {line}", file=sys.stderr),
        )
    if args.json:
        print(json.dumps(result, indent=2))
        return
    from rich.console import Console

    from service.devtools.bench.report import import_rows_text

    for label, value in import_rows_text({"import": result}):
        Console().print(f"{label}: {value}")


if __name__ == "__main__":
    main()
