"""``taskhub import`` (celery beat, django-celery-beat, redbeat) and ``taskhub sync``
(a Celery app's declared schedules): read the entries, then print and apply the plan."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from taskhub.cli.common import (
    call_on_engine,
    json_option,
    print_json,
    service_error,
    settings_or_exit,
    table,
    tenant_option,
)
from taskhub.core import limits
from taskhub.core.clock import utcnow
from taskhub.core.errors import TaskhubError
from taskhub.service.importing import plan
from taskhub.service.importing.entries import REDBEAT_KEY_PREFIX, Entry

#: The exit code when an entry was refused (the others are applied): bad input, as the
#: other commands' refusals.
REFUSED_EXIT = 2
_PAST = {
    plan.CREATE: "created",
    plan.UPDATE: "updated",
    plan.UNCHANGED: "unchanged",
    plan.REFUSED: "refused",
    plan.DELETE: "deleted",
}

dry_run_option = click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
broker_option = click.option(
    "--broker",
    default=limits.DEFAULT_CELERY_BROKER,
    show_default=True,
    help="The broker (a name in TASKHUB_CELERY_BROKERS) the tasks send their Celery tasks to.",
)
default_queue_option = click.option(
    "--default-queue",
    default=limits.DEFAULT_CELERY_QUEUE,
    show_default=True,
    help="The queue of entries that name none (your app's task_default_queue).",
)


def _read(reader: Callable[..., list[Entry]], *args: Any) -> list[Entry]:
    try:
        return reader(*args)
    except TaskhubError as error:
        raise service_error(error) from None


def _run(
    entries: Sequence[Entry],
    *,
    tenant: str,
    as_json: bool,
    dry_run: bool,
    broker: str,
    sync: str | None = None,
    prune: bool = False,
) -> None:
    """Apply (or, with --dry-run, only show) the plan; exit 2 if an entry was refused."""
    steps: list[plan.Step] = call_on_engine(
        plan.apply,
        tenant,
        entries,
        utcnow(),
        settings_or_exit(),
        dry_run=dry_run,
        sync=sync,
        prune=prune,
        broker=broker,
    )
    if as_json:
        print_json({"dry_run": dry_run, "steps": [step.to_dict() for step in steps]})
    else:
        table([step.to_dict() for step in steps], ["name", "action", "detail"])
        counts = Counter(step.action for step in steps)
        summary = ", ".join(
            f"{counts[action]} {_PAST[action]}" for action in _PAST if counts[action]
        )
        suffix = " (dry run: nothing was changed)" if dry_run else ""
        click.echo(f"{summary or 'no entries'}{suffix}")
    if any(step.action == plan.REFUSED for step in steps):
        click.get_current_context().exit(REFUSED_EXIT)


F = TypeVar("F", bound=Callable[..., None])


def plan_options(command: F) -> F:
    """What every import and sync takes: ``--broker``, ``--tenant``, ``--dry-run``,
    ``--json``."""
    for option in reversed((broker_option, tenant_option, dry_run_option, json_option)):
        command = option(command)
    return command


@click.group("import")
def import_group() -> None:
    """Move schedules over from celery beat, django-celery-beat or redbeat: one task per
    entry, named after it; running it again updates what changed."""


@import_group.command("celery-beat")
@click.argument("app", metavar="MODULE:APP")
@plan_options
def import_celery_beat(app: str, **run: Any) -> None:
    """The app's beat_schedule (the app found as celery -A finds it)."""
    from taskhub.service.importing import celery_apps  # Celery only when asked for

    loaded = _read(celery_apps.load_app, app)
    _run(_read(celery_apps.beat_entries, loaded), **run)


@import_group.command("django-celery-beat")
@click.option(
    "--database-url", required=True, help="django-celery-beat's database (an SQLAlchemy URL)."
)
@default_queue_option
@plan_options
def import_django_celery_beat(database_url: str, default_queue: str, **run: Any) -> None:
    """django-celery-beat's periodic tasks, read from its tables."""
    from taskhub.service.importing import django_beat

    _run(_read(django_beat.read, database_url, default_queue), **run)


@import_group.command("redbeat")
@click.option("--redis-url", required=True, help="The Redis redbeat keeps its entries in.")
@click.option("--key-prefix", default=REDBEAT_KEY_PREFIX, show_default=True)
@click.option(
    "--timezone",
    default=limits.DEFAULT_TIMEZONE,
    show_default=True,
    help="The zone of the crontabs (redbeat stores none: your app's timezone).",
)
@default_queue_option
@plan_options
def import_redbeat(
    redis_url: str, key_prefix: str, timezone: str, default_queue: str, **run: Any
) -> None:
    """redbeat's entries, read from Redis."""
    from taskhub.service.importing import redbeat

    _run(_read(redbeat.read, redis_url, key_prefix, timezone, default_queue), **run)


@click.command("sync")
@click.argument("app", metavar="MODULE:APP")
@click.option(
    "--prune",
    is_flag=True,
    help="Delete the tasks a sync of this app made that it no longer declares.",
)
@plan_options
def sync_command(app: str, prune: bool, **run: Any) -> None:
    """Make the tenant's tasks match the app: its beat_schedule and the schedules declared
    with @periodic (taskhub.periodic) on its tasks."""
    from taskhub.service.importing import celery_apps

    loaded = _read(celery_apps.load_app, app)
    _run(_read(celery_apps.sync_entries, loaded), sync=app, prune=prune, **run)
