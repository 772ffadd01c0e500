"""``taskhub run``, ``api`` and ``dev``: the commands that start taskhub's processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType

import click

from taskhub.cli.common import settings_or_exit
from taskhub.observability import logs
from taskhub.service import database
from taskhub.worker import roles


@click.command(
    "run",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("role", type=click.Choice(roles.ROLES))
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def run_role(role: str, celery_args: tuple[str, ...]) -> None:
    """Run one process role (trigger, state, beat, all, flower) with its launch profile."""
    argv = [*roles.celery_argv(role, settings_or_exit()), *celery_args]
    os.execvp(argv[0], argv)


@click.command("api")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Processes serving the port (one uses at most one core).",
)
def api(host: str, port: int, workers: int) -> None:
    """Serve the REST API (OpenAPI at /docs)."""
    import uvicorn

    settings = settings_or_exit()
    uvicorn.run(
        "taskhub.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=logs.logging_config(settings.log_format, settings.log_level),
        access_log=False,
    )


@click.command("dev")
@click.option("--port", default=8000, show_default=True, help="Port of the API on 127.0.0.1.")
def dev(port: int) -> None:
    """Everything in one command on the embedded defaults: the API, a worker and beat.

    Ctrl-C stops all of it cleanly.
    """
    settings = settings_or_exit()
    database.upgrade(settings.database_url)
    click.echo(
        f"taskhub dev: database {settings.database_url}, broker {settings.broker_url}, "
        f"API on http://127.0.0.1:{port} (docs at /docs)"
    )
    children = [
        subprocess.Popen([sys.executable, "-m", "taskhub.cli", "api", "--port", str(port)]),
        subprocess.Popen(roles.celery_argv("all", settings)),
        subprocess.Popen(roles.celery_argv("beat", settings)),
    ]
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.2)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    failed = [c.returncode for c in children if c.returncode not in (0, -signal.SIGTERM)]
    click.echo("taskhub dev: stopped")
    if failed and not stopping:
        sys.exit(1)
