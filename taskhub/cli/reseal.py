"""``taskhub reseal``: every stored secret sealed again with the newest encryption key."""

from __future__ import annotations

import sys

import click

from taskhub.cli.common import print_json, settings_or_exit
from taskhub.core.sealing import SealingError
from taskhub.service import database


@click.command("reseal")
@click.option("--json", "as_json", is_flag=True)
def reseal_command(as_json: bool) -> None:
    """Re-seal every stored secret with the first key of TASKHUB_ENCRYPTION_KEYS.

    Run it after putting a new key first; then the old key may be dropped. It also moves
    headers named in a new TASKHUB_SECRET_HEADERS into sealed storage."""
    from dataclasses import asdict

    from taskhub.service import reseal

    settings = settings_or_exit()
    try:
        report = reseal.reseal(database.engine_for(settings.database_url), settings)
    except SealingError as error:
        click.echo(f"Error: {error}", err=True)
        sys.exit(1)
    if as_json:
        print_json(asdict(report))
        return
    click.echo(
        f"re-sealed {report.tasks_resealed} tasks ({report.headers_moved} headers moved out "
        f"of plain storage) and {report.signing_secrets_resealed} signing secrets"
    )
