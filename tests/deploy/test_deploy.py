"""Deployment files (deploy/): they name real commands and settings, and the commands
they run start Steady for real against PostgreSQL and Redis."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from service.cli.main import app
from service.devtools.servers import free_port, wait_until
from service.settings import SECRET_FIELDS, Settings
from tests.conftest import POSTGRES_URL
from tests.support.processes import STEADY, steady_process, steady_web

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
UNITS = DEPLOY / "systemd"
STEADY_SERVICES = ("release", "web", "worker", "beat", "sandbox")
BUILD_PY = (sys.executable, "-c", "import setuptools; setuptools.setup()", "--quiet", "build_py")


def setting_names() -> set[str]:
    """Every environment variable Settings reads, and every *_FILE secret variant."""
    names = {
        str(name)
        for info in Settings.model_fields.values()
        for name in getattr(info.validation_alias, "choices", [])
    }
    return names | {f"{secret}_FILE" for secret in SECRET_FIELDS.values()}


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def unit(name: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(UNITS / name, encoding="utf-8")
    return parser["Service"] if parser.has_section("Service") else parser["DEFAULT"]


def assert_is_a_steady_command(argv: list[str]) -> None:
    """`steady SUB … --help` must succeed: the subcommand and every option exist."""
    assert Path(argv[0]).name == "steady", argv
    result = CliRunner().invoke(app, [*argv[1:], "--help"])
    assert result.exit_code == 0, f"{shlex.join(argv)}: {result.output}"


# --- the env example --------------------------------------------------------------


def test_env_example_lists_every_setting() -> None:
    example = (DEPLOY / "steady.env.example").read_text(encoding="utf-8")
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, flags=re.MULTILINE))
    missing = setting_names() - listed
    assert not missing, f"deploy/steady.env.example lacks {sorted(missing)}"
    unknown = listed - setting_names()
    assert not unknown, f"deploy/steady.env.example names unknown settings {sorted(unknown)}"


def test_every_setting_line_has_a_comment_nearby() -> None:
    lines = (DEPLOY / "steady.env.example").read_text(encoding="utf-8").splitlines()
    uncommented_values = [ln for ln in lines if re.match(r"^[A-Z_]+=.", ln)]
    for line in uncommented_values:
        index = lines.index(line)
        assert lines[index - 1].startswith("#"), f"explain {line.split('=')[0]}"


# --- docker compose ----------------------------------------------------------------


def test_compose_has_the_services_in_the_right_order() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", *STEADY_SERVICES}
    assert services["release"]["command"] == ["steady", "db", "upgrade"]
    assert services["release"]["restart"] == "no"
    assert services["release"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("web", "worker", "beat"):
        depends = services[name]["depends_on"]
        assert depends["release"]["condition"] == "service_completed_successfully", name
        assert depends["redis"]["condition"] == "service_healthy", name
        assert "profiles" not in services[name]
    assert services["sandbox"]["profiles"] == ["sandbox"]
    assert services["web"]["command"][:2] == ["steady", "web"]
    assert "0.0.0.0" in services["web"]["command"], "listen beyond the container"  # noqa: S104
    assert services["worker"]["command"][:2] == ["steady", "worker"]
    assert services["beat"]["command"][:2] == ["steady", "beat"]


def test_compose_commands_are_real_steady_commands() -> None:
    for name in STEADY_SERVICES:
        assert_is_a_steady_command(compose()["services"][name]["command"])


def test_compose_steady_services_share_image_settings_and_servers() -> None:
    services = compose()["services"]
    for name in STEADY_SERVICES:
        service = services[name]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile", name
        assert service["environment"]["STEADY_DATABASE_URL"].startswith("postgresql://"), name
        assert "@postgres:5432/" in service["environment"]["STEADY_DATABASE_URL"]
        assert service["environment"]["STEADY_BROKER_URL"] == "redis://redis:6379/0"
        assert service["env_file"][0]["path"] == "./steady.env"


def test_compose_healthchecks() -> None:
    services = compose()["services"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])


def _docker_compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, check=False
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _docker_compose_available(), reason="docker compose plugin not installed")
def test_docker_compose_accepts_the_file() -> None:
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "--profile", "sandbox", "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# --- the image ---------------------------------------------------------------------


def dockerfile_stages() -> list[list[str]]:
    stages: list[list[str]] = []
    for line in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if line.startswith("FROM "):
            stages.append([])
        if stages and line and not line.startswith("#"):
            stages[-1].append(line)
    return stages


def test_dockerfile_is_multi_stage_and_runs_as_a_non_root_user() -> None:
    text_ = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text_
    builder, runtime = dockerfile_stages()
    assert builder[0].endswith(" AS builder")
    assert runtime[0].endswith(" AS runtime")
    assert any(line.startswith("COPY --from=builder /opt/steady") for line in runtime)
    users = [line for line in runtime if line.startswith("USER ")]
    assert users
    assert not users[-1].split()[1].startswith(("root", "0")), users
    cmd = next(line for line in runtime if line.startswith("CMD "))
    assert_is_a_steady_command(__import__("json").loads(cmd[4:]))


@pytest.mark.slow
def test_image_layout_finds_the_templates(tmp_path: Path) -> None:
    """Replay the builder stage's COPY lines and its install into a scratch site-packages:
    the templates come with the package, and nothing is copied into site-packages by hand."""
    builder = dockerfile_stages()[0]
    site_in_image = "/opt/steady/lib/python3.11/site-packages"
    src, site = tmp_path / "src", tmp_path / "site-packages"
    src.mkdir()
    for line in builder:
        if not line.startswith("COPY "):
            continue
        *sources, destination = line.split()[1:]
        assert not destination.startswith(site_in_image), f"copied by hand: {line}"
        target = src / destination
        for source in sources:
            path = ROOT / source
            into = target / path.name if destination.endswith("/") else target
            if path.is_dir():
                # Docker's COPY keeps links as links (service/templates -> ../templates).
                ignore = shutil.ignore_patterns("__pycache__")
                shutil.copytree(path, into, symlinks=True, ignore=ignore)
            else:
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, into)
    # `pip install .` puts exactly what setuptools' build_py produces into site-packages;
    # running build_py directly needs neither the network nor the `wheel` package.
    install = subprocess.run(
        [*BUILD_PY, "--build-lib", str(site)],
        capture_output=True,
        text=True,
        check=False,
        cwd=src,
    )
    assert install.returncode == 0, install.stderr
    probe = (
        "import service, service.messages.content as c; "
        "print(service.__file__); print(c.TEMPLATES_DIR); "
        "print(c.Content().sms('restraint_01', c.sample_context())); "
        "import service.storage.db as d; assert (d.MIGRATIONS_DIR / 'env.py').is_file()"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    package_file, templates_dir, body = result.stdout.splitlines()[:3]
    assert package_file.startswith(str(site)), "the installed copy, not the source tree"
    assert Path(templates_dir) == site / "service" / "templates"
    assert not Path(templates_dir).is_symlink(), "real files in the installed package"
    assert body


# --- systemd -----------------------------------------------------------------------


@pytest.mark.parametrize("process", ["web", "worker", "beat"])
def test_systemd_unit_runs_the_steady_process_hardened(process: str) -> None:
    service = unit(f"steady-{process}.service")
    argv = shlex.split(service["ExecStart"])
    assert argv[0] == "/opt/steady/venv/bin/steady"
    assert argv[1] == process
    assert_is_a_steady_command(argv)
    assert service["EnvironmentFile"] == "/etc/steady/steady.env"
    assert service["User"] == "steady"
    assert service["Restart"] == "on-failure"
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
    }.items():
        assert service[key] == value, key


def test_systemd_release_runs_migrations_before_web() -> None:
    release = unit("steady-release.service")
    assert release["Type"] == "oneshot"
    assert shlex.split(release["ExecStart"])[1:] == ["db", "upgrade"]
    assert release["EnvironmentFile"] == "/etc/steady/steady.env"
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read(UNITS / "steady-web.service", encoding="utf-8")
    assert "steady-release.service" in parser["Unit"]["Requires"]
    assert "steady-release.service" in parser["Unit"]["After"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_systemd_units_verify() -> None:
    result = subprocess.run(
        ["systemd-analyze", "verify", *map(str, sorted(UNITS.glob("*.service")))],
        capture_output=True,
        text=True,
        check=False,
    )
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        # The binary exists only once installed; anything else is a real problem.
        if line.strip() and "is not executable" not in line and "/opt/steady/venv" not in line
    ]
    assert not problems, problems


# --- nginx -------------------------------------------------------------------------


def test_nginx_site_terminates_tls_and_forwards_to_steady_web() -> None:
    site = (DEPLOY / "nginx" / "steady.conf").read_text(encoding="utf-8")
    assert "server 127.0.0.1:8000;" in site
    assert re.search(r"listen 443 ssl", site)
    assert "ssl_certificate " in site
    assert "ssl_certificate_key " in site
    for header in ("X-Forwarded-For", "X-Forwarded-Proto", "Host"):
        assert re.search(rf"proxy_set_header {header} ", site), header
    sizes = re.findall(r"client_max_body_size (\d+)([km])", site)
    assert sizes
    assert all(unit == "k" or int(n) <= 10 for n, unit in sizes), "keep request bodies small"
    assert "location = /webhooks/sendgrid/events" in site, "event batches get a larger limit"
    metrics = site[site.index("location = /metrics") :]
    assert "deny all;" in metrics[: metrics.index("}")]


# --- the processes, for real ---------------------------------------------------------


@pytest.fixture
def fresh_postgres() -> Iterator[str]:
    """An empty database of our own: the release step must build the schema itself."""
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL not configured: set STEADY_TEST_POSTGRES_URL")
    name = f"steady_deploy_{uuid.uuid4().hex[:10]}"
    admin = create_engine(
        POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{POSTGRES_URL.rpartition('/')[0]}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_release_then_web_worker_and_beat_run_against_real_servers(
    fresh_postgres: str, redis_url: str, tmp_path: Path
) -> None:
    env = {
        "STEADY_DATABASE_URL": fresh_postgres,
        "STEADY_BROKER_URL": redis_url,
        "STEADY_ENV": "production",
        "STEADY_SECRET_KEY": "deploy-test-secret-key-0123456789abcdef",
        "STEADY_POSTAL_ADDRESS": "Steady, 1 Test Street, Springfield",
        "STEADY_PUBLIC_URL": "https://steady.example.org",
        "STEADY_TICK_SECONDS": "1",
    }
    release = subprocess.run(
        [STEADY, "db", "upgrade"],
        env={**__import__("os").environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert release.returncode == 0, release.stderr
    assert "database at revision" in release.stdout

    port = free_port()
    with (
        steady_web(env, port, tmp_path / "web.log") as url,
        steady_process(["worker", "--concurrency", "1"], env, tmp_path / "worker.log") as worker,
        steady_process(
            ["beat", "--schedule", str(tmp_path / "beat-schedule")], env, tmp_path / "beat.log"
        ) as beat,
    ):
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        ready = httpx.get(f"{url}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}

        def logged(path: Path, pattern: str) -> bool:
            return (
                re.search(pattern, path.read_text(encoding="utf-8", errors="replace")) is not None
            )

        worker_log, beat_log = tmp_path / "worker.log", tmp_path / "beat.log"
        wait_until(lambda: logged(worker_log, r"celery@\S+ ready\."), 30, "the worker ready")
        wait_until(lambda: logged(beat_log, r"beat: Starting"), 30, "beat to start")
        time.sleep(3)
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()
        assert beat.poll() is None, (tmp_path / "beat.log").read_text()
        assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200


# --- the operator guide ------------------------------------------------------------


def test_operator_guide_links_and_commands_are_real() -> None:
    guide = ROOT / "docs" / "operators.md"
    body = guide.read_text(encoding="utf-8")
    assert "docs/operators.md" in (ROOT / "README.md").read_text(encoding="utf-8")
    for target in re.findall(r"\]\((\.\./[^)#]+)\)", body):
        assert (guide.parent / target).exists(), target
    blocks = re.findall(r"```bash\n(.*?)```", body, flags=re.DOTALL)
    commands = [
        shlex.split(line, comments=True)
        for block in blocks
        for line in block.splitlines()
        if line.startswith("steady ")
    ]
    assert len(commands) >= 5
    for argv in commands:
        assert_is_a_steady_command(argv)
