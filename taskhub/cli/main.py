"""The ``taskhub`` command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from taskhub.cli.tenant import tenant_group
from taskhub.core.errors import TaskhubError, ValidationError
from taskhub.core.sealing import SealingError
from taskhub.core.settings import SettingsError, load
from taskhub.core.statuses import LastStatus
from taskhub.observability import logs
from taskhub.service import apikeys, database, executions, signing_secrets, task_service
from taskhub.worker import roles


def _settings_or_exit() -> Any:
    try:
        return load()
    except SettingsError as error:
        raise click.UsageError(str(error)) from None


@click.group()
def main() -> None:
    """taskhub: fire HTTP triggers on cron, interval and one-time schedules."""


@main.group("db")
def db_group() -> None:
    """The database schema."""


@db_group.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the newest revision (Alembic)."""
    settings = _settings_or_exit()
    database.upgrade(settings.database_url)
    click.echo("database is at the newest revision")


@main.command(
    "run",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("role", type=click.Choice(roles.ROLES))
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def run_role(role: str, celery_args: tuple[str, ...]) -> None:
    """Run one process role (trigger, state, beat, all, flower) with its launch profile."""
    argv = [*roles.celery_argv(role), *celery_args]
    os.execvp(argv[0], argv)


class ServiceError(click.ClickException):
    """A refused request, printed as ``Error: <field>: <message>``.

    Exit codes scripts can rely on (README): 0 done, 1 any other failure, 2 bad input
    (the message names the field), 3 not found, 4 conflict.
    """

    exit_code = 1


class InvalidInput(ServiceError):
    exit_code = 2


class NotFoundError(ServiceError):
    exit_code = 3


class ConflictError(ServiceError):
    exit_code = 4


_ERRORS: dict[str, type[ServiceError]] = {
    "invalid": InvalidInput,
    "not_found": NotFoundError,
    "conflict": ConflictError,
    "quota_exceeded": ConflictError,
}


def service_error(error: TaskhubError) -> ServiceError:
    return _ERRORS.get(error.code, ServiceError)(str(error))


def _now() -> datetime:
    return datetime.now(UTC)


def _call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one service function in one transaction, as the API does."""
    settings = _settings_or_exit()
    try:
        with database.engine_for(settings.database_url).begin() as conn:
            return function(conn, *args, **kwargs)
    except TaskhubError as error:
        raise service_error(error) from None
    except SealingError as error:
        raise ServiceError(str(error)) from None


def _call_on_engine(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a service function that opens its own transactions (a bulk redrive's batches)."""
    settings = _settings_or_exit()
    try:
        return function(database.engine_for(settings.database_url), *args, **kwargs)
    except TaskhubError as error:
        raise service_error(error) from None


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))


def _table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    cells = [[("" if row.get(c) is None else str(row.get(c))) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    for line in [[c.upper() for c in columns], *cells]:
        click.echo("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


def _show_page(page: dict[str, Any], columns: list[str], as_json: bool) -> None:
    if as_json:
        _print_json(page)
        return
    _table(page["items"], columns)
    if page["next_cursor"]:
        click.echo(f"(more: --cursor {page['next_cursor']})", err=True)


def _show_task(task: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(task)
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
        "auto_pause_after_failures",
        "paused_by",
        "paused_reason",
        "paused_at",
        "tags",
    ):
        if key.startswith("paused_") and task[key] is None:
            continue
        click.echo(f"{key + ':':<{_KEY_WIDTH}}{_shown(key, task[key])}")
    click.echo(f"{'target:':<{_KEY_WIDTH}}{task['target']['method']} {task['target']['url']}")


#: Wide enough for the longest key (``auto_pause_after_failures:``) and a space.
_KEY_WIDTH = 28


def _shown(key: str, value: Any) -> str:
    """A value as a person reads it: objects as JSON, unset values in words, never
    Python's ``None``."""
    if isinstance(value, dict | list):
        return json.dumps(value)
    if value is None:
        return "never" if key == "auto_pause_after_failures" else "-"
    return str(value)


DEFAULT_TENANT = "default"


def _tenant(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str:
    """``--tenant``, else ``TASKHUB_TENANT``, else ``default``, said on standard error:
    an API key made for another tenant sees other tasks, and an empty list must not
    look like an empty tenant."""
    if value:
        return value
    click.echo(
        f"using tenant {DEFAULT_TENANT!r} (set --tenant or TASKHUB_TENANT)",
        err=True,
    )
    return DEFAULT_TENANT


tenant_option = click.option(
    "--tenant",
    envvar="TASKHUB_TENANT",
    callback=_tenant,
    help=f"The tenant whose tasks these are; else TASKHUB_TENANT, else {DEFAULT_TENANT!r}.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
TASK_COLUMNS = ["id", "name", "status", "next_execution_time", "last_status", "execution_count"]
EXECUTION_COLUMNS = ["id", "task_id", "scheduled_for", "status", "attempts", "http_status", "error"]


@main.group("task")
def task_group() -> None:
    """Tasks: registered HTTP triggers."""


@task_group.command("add")
@click.argument("definition", type=click.File("r"))
@tenant_option
@json_option
def task_add(definition: Any, tenant: str, as_json: bool) -> None:
    """Create a task from a JSON file (``-`` for standard input), shaped as in SPEC.

    Prints the new task's id (or the whole task with --json)."""
    try:
        data = json.load(definition)
    except json.JSONDecodeError as error:
        raise service_error(ValidationError("", f"the definition is not JSON: {error}")) from None
    task = _call(task_service.add_task, tenant, data, _now())
    _print_json(task) if as_json else click.echo(task["id"])


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
    page = _call(task_service.list_tasks, tenant, tags=list(tags), **filters)
    _show_page(page, TASK_COLUMNS, as_json)


def _task_command(name: str, function: Callable[..., dict[str, Any]], doc: str) -> None:
    @task_group.command(name, help=doc)
    @click.argument("task_id")
    @tenant_option
    @json_option
    def command(task_id: str, tenant: str, as_json: bool) -> None:
        _show_task(_call(function, tenant, task_id, _now()), as_json)


@task_group.command("pause")
@click.argument("task_id")
@click.option("--reason", help="Why; shown as the task's paused_reason.")
@tenant_option
@json_option
def task_pause(task_id: str, reason: str | None, tenant: str, as_json: bool) -> None:
    """Pause a task: it fires nothing until resumed."""
    request = {} if reason is None else {"reason": reason}
    _show_task(_call(task_service.pause_task, tenant, task_id, _now(), request), as_json)


_task_command(
    "resume", task_service.resume_task, "Resume a task; what fell due while paused is skipped."
)


@task_group.command("show")
@click.argument("task_id")
@tenant_option
@json_option
def task_show(task_id: str, tenant: str, as_json: bool) -> None:
    """One task, with its state."""
    _show_task(_call(task_service.get_task, tenant, task_id), as_json)


@task_group.command("run")
@click.argument("task_id")
@tenant_option
@json_option
def task_run(task_id: str, tenant: str, as_json: bool) -> None:
    """Fire a task now: an extra occurrence, sent by the next tick (requested at once)."""
    execution = _call(task_service.run_task_now, tenant, task_id, _now())
    _request_tick()
    _print_json(execution) if as_json else click.echo(f"execution {execution['id']} queued")


@task_group.command("delete")
@click.argument("task_id")
@tenant_option
def task_delete(task_id: str, tenant: str) -> None:
    """Delete a task with its executions."""
    _call(task_service.delete_task, tenant, task_id)
    click.echo(f"deleted {task_id}")


@task_group.command("preview")
@click.argument("task_id", required=False)
@click.option(
    "--schedule",
    "schedule_json",
    help='Preview an unsaved schedule instead, e.g. \'{"cron": "0 9 * * 1-5"}\'.',
)
@click.option("--count", default=10, show_default=True)
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
        preview = _call(
            lambda _conn: task_service.preview_schedule({"schedule": schedule}, _now(), count)
        )
    else:
        preview = _call(task_service.preview_task, tenant, task_id, _now(), count)
    if as_json:
        _print_json(preview)
        return
    _table(preview["fire_times"], ["utc", "local"])


@main.command("executions")
@click.option("--task", "task_id", help="Only this task's.")
@click.option("--status", type=click.Choice(sorted(executions.STATUSES)))
@click.option("--since", help="Scheduled at or after (ISO 8601 with offset).")
@click.option("--until", help="Scheduled before (ISO 8601 with offset).")
@click.option("--limit", type=int)
@click.option("--cursor")
@tenant_option
@json_option
def executions_list(tenant: str, as_json: bool, **filters: Any) -> None:
    """Executions, newest first."""
    _show_page(_call(executions.list_executions, tenant, **filters), EXECUTION_COLUMNS, as_json)


@main.group("dlq")
def dlq_group() -> None:
    """Dead letters: executions that exhausted their attempts."""


DEAD_LETTER_COLUMNS = ["id", "task_id", "scheduled_for", "attempts", "http_status", "error"]


@dlq_group.command("list")
@click.option("--task", "task_id", help="Only this task's.")
@click.option("--tag", "tags", multiple=True, help="key:value of the task; repeatable.")
@click.option("--since", help="Scheduled at or after (ISO 8601 with offset).")
@click.option("--until", help="Scheduled before (ISO 8601 with offset).")
@click.option("--limit", type=int)
@click.option("--cursor")
@tenant_option
@json_option
def dlq_list(tenant: str, as_json: bool, tags: tuple[str, ...], **filters: Any) -> None:
    """Dead letters, newest first, with their last HTTP status and error."""
    page = _call(executions.list_dead_letters, tenant, tags=list(tags), **filters)
    _show_page(page, DEAD_LETTER_COLUMNS, as_json)


@dlq_group.command("redrive")
@click.argument("execution_id", required=False)
@click.option("--task", "task_id", help="Every dead letter of this task.")
@click.option("--tag", "tags", multiple=True, help="key:value of the task; repeatable.")
@click.option("--since", help="Scheduled at or after (ISO 8601 with offset).")
@click.option("--until", help="Scheduled before (ISO 8601 with offset).")
@click.option("--all", "everything", is_flag=True, help="Every dead letter of the tenant.")
@tenant_option
@json_option
def dlq_redrive(
    execution_id: str | None,
    task_id: str | None,
    tags: tuple[str, ...],
    since: str | None,
    until: str | None,
    everything: bool,
    tenant: str,
    as_json: bool,
) -> None:
    """Send a dead letter (ID), or every one matching the filters (or --all), again: same
    idempotency key, a fresh budget of attempts."""
    bulk = bool(task_id or tags or since or until or everything)
    if (execution_id is None) == (not bulk):
        raise click.UsageError(
            "give an execution ID, or filters (--task/--tag/--since/--until) or --all"
        )
    if execution_id is not None:
        execution = _call(executions.redrive, tenant, execution_id, _now())
        _request_tick()
        _print_json(execution) if as_json else click.echo(f"execution {execution['id']} queued")
        return
    data: dict[str, Any] = {"all": True} if everything else {}
    if task_id is not None:
        data["task_id"] = task_id
    if tags:
        data["tags"] = dict(_tag_pairs(tags))
    if since is not None:
        data["since"] = since
    if until is not None:
        data["until"] = until
    result = _call_on_engine(executions.redrive_matching, tenant, data, _now())
    if result["redriven"]:
        _request_tick()
    _print_json(result) if as_json else click.echo(f"{result['redriven']} dead letters redriven")


def _tag_pairs(tags: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    try:
        return task_service.tag_filters(list(tags))
    except TaskhubError as error:
        raise service_error(error) from None


def _request_tick() -> None:
    from taskhub.worker.celery_app import request_tick  # the broker only when needed

    request_tick()


@main.group("apikey")
def apikey_group() -> None:
    """API keys: each lets its holder use the REST API as one tenant."""


APIKEY_COLUMNS = ["id", "prefix", "tenant", "created_at", "last_used_at", "revoked_at"]


@apikey_group.command("create")
@click.option("--tenant", required=True, help="The tenant the key acts as.")
def apikey_create(tenant: str) -> None:
    """Print a new API key for TENANT (only the key, on standard output).

    The key is shown this once; only its digest is stored."""
    key, stored = _call(apikeys.create_key, tenant, _now())
    click.echo(key)
    click.echo(
        f"API key {stored.masked} (id {stored.id}) for tenant {stored.tenant!r}: "
        "store it now, it is not shown again.",
        err=True,
    )


@apikey_group.command("list")
@click.option("--tenant", help="Only this tenant's keys.")
@json_option
def apikey_list(tenant: str | None, as_json: bool) -> None:
    """API keys, newest first (never their secrets)."""
    keys = [key.to_dict() for key in _call(apikeys.list_keys, tenant)]
    if as_json:
        _print_json({"items": keys})
        return
    _table(keys, APIKEY_COLUMNS)


@apikey_group.command("revoke")
@click.argument("key_id_or_prefix")
def apikey_revoke(key_id_or_prefix: str) -> None:
    """Revoke a key, by its id or its prefix: it stops working at once."""
    now = _now()
    key = _call(apikeys.revoke_key, key_id_or_prefix, now)
    if key is None:
        # A whole key may have been pasted: never echo its secret.
        pasted_key = key_id_or_prefix.count("_") >= 2
        shown = apikeys.mask(key_id_or_prefix) if pasted_key else key_id_or_prefix[:40]
        raise NotFoundError(f"no API key with id or prefix {shown!r}")
    when = key.revoked_at.isoformat() if key.revoked_at else ""
    already = "" if key.revoked_at == now else "already "
    click.echo(f"{already}revoked {key.masked} (id {key.id}, tenant {key.tenant!r}) at {when}")


@main.command("stats")
@click.option("--once", is_flag=True, help="Print one view and exit (for scripts and logs).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object (implies --once).")
@click.option(
    "--interval", default=2.0, show_default=True, type=click.FloatRange(0.2), help="Seconds."
)
@click.option(
    "--window",
    default=300.0,
    show_default=True,
    type=click.FloatRange(1),
    help="Seconds of recent attempts the rates and percentiles cover.",
)
def stats_command(once: bool, as_json: bool, interval: float, window: float) -> None:
    """A live view of the KPIs: backlog, tick, attempts, success, lag, latency, processes."""
    from taskhub.observability import stats

    def view() -> stats.Figures:
        figures: stats.Figures = _call(lambda conn: stats.read(conn, _now(), window))
        return figures

    if as_json:
        _print_json(view().to_json())
        return
    if once:
        click.echo(stats.render(view()))
        return
    try:
        while True:
            figures = view()
            click.clear()
            click.echo(stats.render(figures))
            click.echo("\n(Ctrl-C to quit)")
            time.sleep(interval)
    except KeyboardInterrupt:
        return


@main.command("reseal")
@click.option("--json", "as_json", is_flag=True)
def reseal_command(as_json: bool) -> None:
    """Re-seal every stored secret with the first key of TASKHUB_ENCRYPTION_KEYS.

    Run it after putting a new key first; then the old key may be dropped. It also moves
    headers named in a new TASKHUB_SECRET_HEADERS into sealed storage."""
    from dataclasses import asdict

    from taskhub.core.sealing import SealingError
    from taskhub.service import reseal

    settings = _settings_or_exit()
    try:
        report = reseal.reseal(database.engine_for(settings.database_url), settings)
    except SealingError as error:
        click.echo(f"Error: {error}", err=True)
        sys.exit(1)
    if as_json:
        _print_json(asdict(report))
        return
    click.echo(
        f"re-sealed {report.tasks_resealed} tasks ({report.headers_moved} headers moved out "
        f"of plain storage) and {report.signing_secrets_resealed} signing secrets"
    )


@main.command("health")
@click.option(
    "--max-tick-age",
    type=click.FloatRange(1),
    default=None,
    help="Also fail if the last tick ended longer ago than this many seconds.",
)
def health_command(max_tick_age: float | None) -> None:
    """Exit 0 if the database answers (and, with --max-tick-age, ticks run); else 1.

    For container health checks: beat and the discovery worker are healthy together
    only while ticks keep being consumed."""
    settings = _settings_or_exit()
    try:
        last_tick = database.last_tick_timestamp(database.engine_for(settings.database_url))
    except SQLAlchemyError as error:
        click.echo(f"unhealthy: the database is unavailable ({error.__class__.__name__})", err=True)
        sys.exit(1)
    if max_tick_age is not None:
        age_s = None if last_tick is None else _now().timestamp() - last_tick
        if age_s is None or age_s > max_tick_age:
            shown = "never" if age_s is None else f"{age_s:.0f} s ago"
            click.echo(f"unhealthy: the last tick ended {shown}", err=True)
            sys.exit(1)
    click.echo("healthy")


@main.group("signing-secret")
def signing_secret_group() -> None:
    """Signing secrets: the keys of X-Taskhub-Signature, at most two active per tenant."""


SIGNING_COLUMNS = ["id", "tenant", "hint", "active", "created_at", "revoked_at"]


@signing_secret_group.command("create")
@click.option("--tenant", required=True, help="The tenant whose requests it signs.")
def signing_secret_create(tenant: str) -> None:
    """Print a new signing secret for TENANT (only the secret, on standard output).

    The secret is shown this once; it is stored sealed."""
    secret, stored = _call(signing_secrets.create_secret, tenant, _now())
    click.echo(secret)
    click.echo(
        f"signing secret {stored.hint} (id {stored.id}) for tenant {stored.tenant!r}: "
        "store it in your receiver now, it is not shown again.",
        err=True,
    )


@signing_secret_group.command("list")
@click.option("--tenant", help="Only this tenant's secrets.")
@json_option
def signing_secret_list(tenant: str | None, as_json: bool) -> None:
    """Signing secrets, newest first (hints only, never the secrets)."""
    found = [secret.to_dict() for secret in _call(signing_secrets.list_secrets, tenant)]
    if as_json:
        _print_json({"items": found})
        return
    _table(found, SIGNING_COLUMNS)


@signing_secret_group.command("revoke")
@click.argument("secret_id")
def signing_secret_revoke(secret_id: str) -> None:
    """Revoke a signing secret by its id: attempts sent from now on no longer carry it."""
    now = _now()
    stored = _call(signing_secrets.revoke_secret, secret_id, now)
    already = "" if stored.revoked_at == now else "already "
    click.echo(f"{already}revoked signing secret {stored.hint} (id {stored.id})")


@main.command("api")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
def api(host: str, port: int) -> None:
    """Serve the REST API (OpenAPI at /docs)."""
    import uvicorn

    settings = _settings_or_exit()
    uvicorn.run(
        "taskhub.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        log_config=logs.logging_config(settings.log_format, settings.log_level),
        access_log=False,
    )


@main.command("dev")
@click.option("--port", default=8000, show_default=True, help="Port of the API on 127.0.0.1.")
def dev(port: int) -> None:
    """Everything in one command on the embedded defaults: the API, a worker and beat.

    Ctrl-C stops all of it cleanly.
    """
    settings = _settings_or_exit()
    database.upgrade(settings.database_url)
    click.echo(
        f"taskhub dev: database {settings.database_url}, broker {settings.broker_url}, "
        f"API on http://127.0.0.1:{port} (docs at /docs)"
    )
    children = [
        subprocess.Popen([sys.executable, "-m", "taskhub.cli", "api", "--port", str(port)]),
        subprocess.Popen(roles.celery_argv("all")),
        subprocess.Popen(roles.celery_argv("beat")),
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


main.add_command(tenant_group)

if __name__ == "__main__":
    main()
