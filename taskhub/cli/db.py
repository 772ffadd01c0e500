"""``taskhub db``: the database schema."""

from __future__ import annotations

from dataclasses import asdict

import click

from taskhub.cli.common import json_option, print_json, settings_or_exit
from taskhub.service import database, retention


@click.group("db")
def db_group() -> None:
    """The database schema."""


@db_group.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the newest revision (Alembic)."""
    settings = settings_or_exit()
    database.upgrade(settings.database_url)
    click.echo("database is at the newest revision")


@db_group.command("prune")
@click.option("--dry-run", is_flag=True, help="Count what would be removed; remove nothing.")
@json_option
def db_prune(dry_run: bool, as_json: bool) -> None:
    """Remove expired history now: one prune pass, as beat runs it, to the end.

    Ended executions (and their attempts) older than their task's retention_days or
    TASKHUB_EXECUTION_RETENTION_DAYS, and dead letters older than
    TASKHUB_DEAD_LETTER_RETENTION_DAYS. Running and queued executions always stay. On
    PostgreSQL the tables it removed rows from are then vacuumed as TASKHUB_PRUNE_VACUUM
    says; --dry-run vacuums nothing."""
    settings = settings_or_exit()
    report = retention.prune(settings, dry_run=dry_run)
    if as_json:
        print_json(asdict(report))
        return
    if report.skipped:
        click.echo("another prune pass is running; nothing done")
        return
    verb = "would remove" if dry_run else "removed"
    vacuumed = (
        f"; vacuumed {', '.join(report.vacuumed)} in {report.vacuum_s:.2f} s"
        if report.vacuumed
        else ""
    )
    click.echo(
        f"{verb} {report.executions} executions, {report.dead_letters} dead letters "
        f"and {report.attempts} attempts{vacuumed}"
    )
