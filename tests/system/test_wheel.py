"""The built wheel, installed (not editable) into a fresh venv, runs on its own.

`pip wheel` builds Steady's wheel; pip installs it into a new venv with no
pip and no source tree. Its dependencies are this venv's (the same versions),
reached through a `.pth` line: only libraries come from there, never Steady,
which the probe checks. `steady run` then starts from an empty directory, a
signup goes in over HTTP, and the confirmation shows up in the outbox output:
the templates and pages came with the package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from service.devtools.servers import free_port, stop_process_group, wait_until

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# What a build reads; copied, so no stale build/ or *.egg-info of the checkout counts.
SOURCES = ("pyproject.toml", "README.md", "service", "workers", "templates")
PHONE = "+12125550142"
# What the SMS confirmation says (templates/sms/confirm.txt).
CONFIRMATION_TEXT = "reply YES to confirm"


def _run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    completed = subprocess.run(
        [str(arg) for arg in args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env=env,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout


def _project_site_packages() -> list[str]:
    prefix = Path(sys.prefix).resolve()
    return [
        entry
        for entry in sys.path
        if entry.endswith("site-packages") and Path(entry).resolve().is_relative_to(prefix)
    ]


def test_the_installed_wheel_runs_from_an_empty_directory_and_sends_a_confirmation(
    tmp_path: Path,
) -> None:
    src, dist, venv, empty = (tmp_path / name for name in ("src", "dist", "venv", "empty"))
    empty.mkdir()
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__")
            shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy(ROOT / name, src / name)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", dist, src)
    (wheel,) = dist.glob("steady-*.whl")
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--quiet", wheel)
    (site,) = (venv / "lib").glob("python3*/site-packages")
    (site / "steady-dependencies.pth").write_text("\n".join(_project_site_packages()) + "\n")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("STEADY_", "TWILIO_", "SENDGRID_", "PYTHON"))
    }
    found = _run(python, "-c", "import service; print(service.__file__)", cwd=empty, env=env)
    assert Path(found.strip()).is_relative_to(site), "Steady comes from the wheel, not the tree"

    port = free_port()
    log_path = tmp_path / "steady-run.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [venv / "bin" / "steady", "run", "--port", str(port)],
            cwd=empty,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"

            def healthy() -> bool:
                try:
                    return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return process.poll() is not None  # died: stop waiting, fail below

            wait_until(healthy, 60, f"steady run on {base}")
            assert process.poll() is None, log_path.read_text()
            page = httpx.get(f"{base}/", timeout=10)
            assert page.status_code == 200
            response = httpx.post(
                f"{base}/subscribe", json={"phone": PHONE, "consent": True}, timeout=10
            )
            assert response.status_code == 202, response.text
            wait_until(
                lambda: CONFIRMATION_TEXT in log_path.read_text(errors="replace"),
                60,
                f"the confirmation in the outbox output ({log_path})",
            )
        finally:
            stop_process_group(process)
    output = log_path.read_text(errors="replace")
    assert "[outbox] sms #" in output
    assert PHONE not in output, "the outbox masks the number"
    assert (empty / "steady.db").is_file(), "the database went where it was started"
