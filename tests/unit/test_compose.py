"""docker-compose.yml cannot be run here (no Docker engine), so check what can be:
it is valid YAML of the expected shape, and every command it runs exists."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from taskhub.cli.main import main
from taskhub.core.settings import SettingsError, load
from taskhub.db import schema
from taskhub.worker import roles

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = load({})
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]


def test_every_role_has_a_service() -> None:
    assert {"redis", "postgres", "migrate", "trigger-worker", "worker", "beat", "flower"} <= set(
        SERVICES
    )


def test_dependencies_name_real_services() -> None:
    for name, service in SERVICES.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"


def test_the_app_waits_for_the_migration() -> None:
    for name in ("trigger-worker", "worker", "beat", "flower"):
        assert SERVICES[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )


def test_redis_never_evicts_queued_work() -> None:
    assert "noeviction" in SERVICES["redis"]["command"]


def _commands() -> list[tuple[str, list[str]]]:
    return [
        (name, s["command"])
        for name, s in SERVICES.items()
        if "command" in s and name not in ("redis",)
    ]


@pytest.mark.parametrize(("service", "command"), _commands())
def test_every_command_exists(service: str, command: list[str]) -> None:
    program, *args = command
    if program.startswith("workers/"):
        script = ROOT / program
        assert script.is_file() and os.access(script, os.X_OK), f"{service}: {program} missing"
        words = shlex.split(script.read_text().strip().splitlines()[-1])
        assert words[:3] == ["exec", "taskhub", "run"] and words[3] in roles.ROLES
    elif program == "taskhub":
        result = CliRunner().invoke(main, [*args, "--help"])
        assert result.exit_code == 0, f"{service}: taskhub {' '.join(args)}: {result.output}"
    elif program == "celery":
        subcommand = args[args.index("-A") + 2]
        completed = python("-m", "celery", "-A", "taskhub", subcommand, "--help")
        assert completed.returncode == 0, completed.stderr
    else:
        pytest.fail(f"{service}: unknown program {program}")


def test_role_command_lines() -> None:
    assert roles.celery_argv("trigger", DEFAULTS)[1:] == [
        "-m",
        "taskhub.worker.command",
        "worker",
        "-Q",
        "taskhub.triggers",
        "-P",
        "threads",
        "-c",
        "128",
        "-n",
        "trigger@%h",
        "--loglevel",
        "INFO",
    ]
    assert "taskhub.discovery,taskhub.state" in roles.celery_argv("state", DEFAULTS)
    with pytest.raises(ValueError, match="unknown role"):
        roles.celery_argv("nope", DEFAULTS)


def test_role_command_lines_follow_the_launch_settings(tmp_path: Path) -> None:
    settings = load(
        {
            "TASKHUB_TRIGGER_POOL": "gevent",
            "TASKHUB_TRIGGER_CONCURRENCY": "7",
            "TASKHUB_STATE_POOL": "solo",
            "TASKHUB_STATE_CONCURRENCY": "1",
            "TASKHUB_WORKER_CONCURRENCY": "3",
            "TASKHUB_LOG_LEVEL": "debug",
            "TASKHUB_FLOWER_ADDRESS": "0.0.0.0",
            "TASKHUB_FLOWER_PORT": "5600",
            "TASKHUB_DATA_DIR": str(tmp_path / "data"),
        }
    )

    def pool_and_concurrency(role: str) -> list[str]:
        argv = roles.celery_argv(role, settings)
        assert argv[-2:] == ["--loglevel", "DEBUG"]
        return argv[argv.index("-P") : argv.index("-P") + 4]

    assert pool_and_concurrency("trigger") == ["-P", "gevent", "-c", "7"]
    assert pool_and_concurrency("state") == ["-P", "solo", "-c", "1"]
    assert pool_and_concurrency("all") == ["-P", "threads", "-c", "3"]
    beat = roles.celery_argv("beat", settings)
    assert beat[beat.index("--schedule") + 1] == str(tmp_path / "data" / "celerybeat-schedule")
    assert (tmp_path / "data").is_dir()
    assert roles.celery_argv("flower", settings)[-2:] == ["--address=0.0.0.0", "--port=5600"]
    with pytest.raises(SettingsError, match="TASKHUB_TRIGGER_CONCURRENCY must be at least 1"):
        load({"TASKHUB_TRIGGER_CONCURRENCY": "0"})


def test_every_long_running_taskhub_service_has_a_health_check(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'taskhub.db'}"
    schema.upgrade(url)
    for name in ("api", "trigger-worker", "worker", "beat"):
        test = SERVICES[name]["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL"), name
        if test[0] == "CMD" and test[1] == "taskhub":
            # The check's own arguments parse; with no tick yet it reports unhealthy.
            result = CliRunner().invoke(main, test[2:], env={"TASKHUB_DATABASE_URL": url})
            assert result.exit_code == 1, f"{name}: {result.output}"
            assert "the last tick ended never" in result.output


def test_the_api_is_served_and_flower_is_not_open_to_all() -> None:
    assert SERVICES["api"]["command"][:2] == ["taskhub", "api"]
    assert "FLOWER_BASIC_AUTH" in SERVICES["flower"]["environment"]
    for service in ("api", "flower"):
        assert all(port.startswith("127.0.0.1:") for port in SERVICES[service]["ports"])


@pytest.mark.parametrize("command", ["worker", "beat"])
def test_the_lean_celery_command_is_celerys_own(command: str) -> None:
    # The same click command as `celery -A taskhub <command>`: the same options.
    lean = python("-m", "taskhub.worker.command", command, "--help")
    umbrella = python("-m", "celery", "-A", "taskhub", command, "--help")
    assert lean.returncode == 0, lean.stderr
    assert lean.stdout.startswith(f"Usage: celery {command} [OPTIONS]")
    # Everything after the usage line (which names the program) is the same.
    assert lean.stdout.split("\n", 1)[1] == umbrella.stdout.split("\n", 1)[1]


def test_the_lean_celery_command_refuses_other_commands() -> None:
    completed = python("-m", "taskhub.worker.command", "flower")
    assert completed.returncode != 0
    assert "usage: python -m taskhub.worker.command {worker|beat}" in completed.stderr


def python(*args: str) -> subprocess.CompletedProcess[str]:
    """This interpreter with ``args``, in the project's root, its output captured."""
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
