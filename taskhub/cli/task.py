"""``taskhub task``: add, list, show, pause, resume, run, backfill, delete and preview
tasks."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from taskhub.cli.common import (
    call,
    json_option,
    print_json,
    request_tick,
    service_error,
    settings_or_exit,
    show_page,
    show_queued,
    table,
    tenant_option,
)
from taskhub.core import limits
from taskhub.core.clock import utcnow
from taskhub.core.errors import ValidationError
from taskhub.core.statuses import LastStatus
from taskhub.service import exclusions, task_service, task_views

TASK_COLUMNS = ["id", "name", "status", "next_execution_time", "last_status", "execution_count"]

#: Wide enough for the longest key (``auto_pause_after_failures:``) and a space.
_KEY_WIDTH = 28


def _show_task(task: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(task)
        return
    for key in (
        "id",
        "name",
        "status",
        "schedule",
        "next_execution_time",
        "last_status",
        "last_execution_time",
        "execution_count",
        "consecutive_failures",
        "misfire_policy",
        "overlap",
        "auto_pause_after_failures",
        "paused_by",
        "paused_reason",
        "paused_at",
        "tags",
        "exclude_calendars",
        "retention_days",
        "callback",
        "max_lag_seconds",
    ):
        if key.startswith("paused_") and task[key] is None:
            continue
        click.echo(f"{key + ':':<{_KEY_WIDTH}}{_shown(key, task[key])}")
    click.echo(f"{'target:':<{_KEY_WIDTH}}{_target(task['target'])}")


def _target(target: dict[str, Any]) -> str:
    """``POST https://...``, or the Celery task and where it is sent."""
    celery = target.get("celery")
    if celery is None:
        return f"{target['method']} {target['url']}"
    return f"Celery task {celery['task']} (broker {celery['broker']}, queue {celery['queue']})"


def _shown(key: str, value: Any) -> str:
    """A value as a person reads it: objects as JSON, unset values in words, never
    Python's ``None``."""
    if isinstance(value, dict | list):
        return json.dumps(value)
    if value is None:
        if key == "retention_days":
            return "default"
        return "never" if key == "auto_pause_after_failures" else "-"
    return str(value)


@click.group("task")
def task_group() -> None:
    """Tasks: registered HTTP triggers."""


@task_group.command("add")
@click.argument("definition", type=click.File("r"))
@tenant_option
@json_option
def task_add(definition: Any, tenant: str, as_json: bool) -> None:
    """Create a task from a JSON file (``-`` for standard input): a task definition.

    Prints the new task's id (or the whole task with --json)."""
    try:
        data = json.load(definition)
    except json.JSONDecodeError as error:
        raise service_error(ValidationError("", f"the definition is not JSON: {error}")) from None
    task = call(task_service.add_task, tenant, data, utcnow(), settings_or_exit())
    print_json(task) if as_json else click.echo(task["id"])


@task_group.command("list")
@tenant_option
@json_option
@click.option("--status", type=click.Choice(["active", "paused", "finished"]))
@click.option("--tag", "tags", multiple=True, help="key:value; repeat to require several.")
@click.option("--name", help="Exact name.")
@click.option("--name-prefix", help="Names starting with this.")
@click.option("--last-status", type=click.Choice([s.value for s in LastStatus]))
@click.option("--next-before", help="ISO 8601 time with offset.")
@click.option("--next-after", help="ISO 8601 time with offset.")
@click.option("--limit", type=int)
@click.option("--cursor", help="Continue from a previous page.")
def task_list(tenant: str, as_json: bool, tags: tuple[str, ...], **filters: Any) -> None:
    """List tasks, oldest first, one page at a time."""
    page = call(task_views.list_tasks, tenant, settings_or_exit(), tags=list(tags), **filters)
    show_page(page, TASK_COLUMNS, as_json)


OneTask = Callable[[str, str, bool], None]


def _one_task_command(name: str) -> Callable[[OneTask], click.Command]:
    """``taskhub task NAME TASK_ID`` with ``--tenant`` and ``--json``: a command on one
    task, named ``name``, its help the function's docstring."""

    def register(command: OneTask) -> click.Command:
        for option in reversed((click.argument("task_id"), tenant_option, json_option)):
            command = option(command)
        return task_group.command(name)(command)

    return register


@task_group.command("pause")
@click.argument("task_id")
@click.option("--reason", help="Why; shown as the task's paused_reason.")
@tenant_option
@json_option
def task_pause(task_id: str, reason: str | None, tenant: str, as_json: bool) -> None:
    """Pause a task: it fires nothing until resumed."""
    request = {} if reason is None else {"reason": reason}
    _show_task(
        call(task_service.pause_task, tenant, task_id, utcnow(), settings_or_exit(), request),
        as_json,
    )


@_one_task_command("resume")
def task_resume(task_id: str, tenant: str, as_json: bool) -> None:
    """Resume a task; what fell due while paused is skipped."""
    task = call(task_service.resume_task, tenant, task_id, utcnow(), settings_or_exit())
    _show_task(task, as_json)


@_one_task_command("show")
def task_show(task_id: str, tenant: str, as_json: bool) -> None:
    """One task, with its state."""
    _show_task(call(task_views.get_task, tenant, task_id, settings_or_exit()), as_json)


@_one_task_command("run")
def task_run(task_id: str, tenant: str, as_json: bool) -> None:
    """Fire a task now: an extra occurrence, sent by the next tick (requested at once)."""
    show_queued(call(task_service.run_task_now, tenant, task_id, utcnow()), as_json)


@task_group.command("backfill")
@click.argument("task_id")
@click.option(
    "--start", required=True, help="ISO 8601 time with offset: the range's first instant."
)
@click.option("--end", required=True, help="ISO 8601 time with offset; later than now is now.")
@tenant_option
@json_option
def task_backfill(task_id: str, start: str, end: str, tenant: str, as_json: bool) -> None:
    """Fire every occurrence from START to END (both included) not yet executed, each
    once; sent by the next tick (requested at once), under flow control."""
    request = {"start": start, "end": end}
    result = call(
        task_service.backfill_task, tenant, task_id, request, utcnow(), settings_or_exit()
    )
    if result["count"]:
        request_tick()
    count = result["count"]
    if as_json:
        print_json(result)
    else:
        click.echo(f"{count} occurrence{'' if count == 1 else 's'} queued")


@task_group.command("delete")
@click.argument("task_id")
@tenant_option
def task_delete(task_id: str, tenant: str) -> None:
    """Delete a task with its executions."""
    call(task_service.delete_task, tenant, task_id)
    click.echo(f"deleted {task_id}")


@task_group.command("preview")
@click.argument("task_id", required=False)
@click.option(
    "--schedule",
    "schedule_json",
    help='Preview an unsaved schedule instead, e.g. \'{"cron": "0 9 * * 1-5"}\'.',
)
@click.option("--count", default=limits.DEFAULT_PREVIEW, show_default=True)
@tenant_option
@json_option
def task_preview(
    task_id: str | None, schedule_json: str | None, count: int, tenant: str, as_json: bool
) -> None:
    """The next fire times of a task, or of an unsaved --schedule, in UTC and local time."""
    if (task_id is None) == (schedule_json is None):
        raise click.UsageError("give a TASK_ID or --schedule, not both")
    if schedule_json is not None:
        try:
            schedule = json.loads(schedule_json)
        except json.JSONDecodeError as error:
            raise service_error(ValidationError("schedule", f"is not JSON: {error}")) from None
        preview = call(
            lambda _conn: task_views.preview_schedule({"schedule": schedule}, utcnow(), count)
        )
    else:
        preview = call(task_views.preview_task, tenant, task_id, utcnow(), count)
    if as_json:
        print_json(preview)
        return
    table(preview["fire_times"], ["utc", "local", "reason"])


def _skip_command(name: str, summary: str) -> click.Command:
    """``taskhub task skip|unskip TASK_ID --at ISO``."""

    @click.argument("task_id")
    @click.option("--at", "at", required=True, help="The occurrence, ISO 8601 with offset.")
    @tenant_option
    @json_option
    def command(task_id: str, at: str, tenant: str, as_json: bool) -> None:
        function = exclusions.skip_occurrence if name == "skip" else exclusions.unskip_occurrence
        result = call(function, tenant, task_id, {"scheduled_for": at}, utcnow())
        if as_json:
            print_json(result)
        else:
            verb = "skipped" if result["skipped"] else "no longer skipped"
            click.echo(f"{result['scheduled_for']} of {result['task_id']}: {verb}")

    command.__doc__ = summary
    return task_group.command(name)(command)


task_skip = _skip_command(
    "skip", "Skip one occurrence of a task (--at, one of its schedule's times): not fired."
)
task_unskip = _skip_command("unskip", "Undo the skip of one occurrence: it fires again.")
