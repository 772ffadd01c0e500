"""The ``taskhub`` command: the root group, with one module per command group."""

from __future__ import annotations

import click

from taskhub.cli.apikey import apikey_group
from taskhub.cli.apply import apply_command
from taskhub.cli.calendar import calendar_group
from taskhub.cli.channel import channel_group, notifications_list
from taskhub.cli.db import db_group
from taskhub.cli.executions import dlq_group, executions_list
from taskhub.cli.importing import import_group, sync_command
from taskhub.cli.processes import api, dev, run_role
from taskhub.cli.reseal import reseal_command
from taskhub.cli.signing_secret import signing_secret_group
from taskhub.cli.status import health_command, stats_command
from taskhub.cli.task import task_group
from taskhub.cli.tenant import tenant_group


@click.group()
def main() -> None:
    """taskhub: fire HTTP triggers on cron, interval and one-time schedules."""


for command in (
    db_group,
    run_role,
    api,
    dev,
    task_group,
    executions_list,
    dlq_group,
    apikey_group,
    signing_secret_group,
    stats_command,
    health_command,
    reseal_command,
    tenant_group,
    calendar_group,
    import_group,
    sync_command,
    apply_command,
    channel_group,
    notifications_list,
):
    main.add_command(command)

if __name__ == "__main__":
    main()
