"""``taskhub db``: the database schema."""

from __future__ import annotations

import click

from taskhub.cli.common import settings_or_exit
from taskhub.service import database


@click.group("db")
def db_group() -> None:
    """The database schema."""


@db_group.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the newest revision (Alembic)."""
    settings = settings_or_exit()
    database.upgrade(settings.database_url)
    click.echo("database is at the newest revision")
