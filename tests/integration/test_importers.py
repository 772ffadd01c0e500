"""``taskhub import`` and ``taskhub sync`` against the real thing, through the real
command: a Celery app's ``beat_schedule`` module, django-celery-beat's tables made by its
own migrations (on SQLite and on PostgreSQL) and filled through Django's ORM, and
entries saved by redbeat's own ``RedBeatSchedulerEntry.save()``. Each: a dry run changes
nothing, an import creates, a second is unchanged, and a changed entry updates exactly
one task."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from celery.schedules import crontab, schedule
from redbeat import RedBeatSchedulerEntry
from redbeat.schedules import rrule

from taskhub.service.importing.entries import DISABLED_AT_SOURCE
from tests.support import django_beat
from tests.support.cli import Cli

BEATAPP = Path(__file__).resolve().parents[1] / "beatapp.py"
TENANT = "imports"


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path)
    cli.env["PYTHONDONTWRITEBYTECODE"] = "1"  # beatapp.py is changed within a second
    cli("db", "upgrade")
    # Entries every 10 or 30 seconds, as in the sources: below the default quota.
    cli("tenant", "limits", "set", TENANT, "--min-interval-seconds", "1")
    return cli


def plan(cli: Cli, *args: str, expect: int = 0, tenant: str = TENANT) -> dict[str, tuple[str, str]]:
    """The plan of one run, by entry name: (action, detail)."""
    done = cli(*args, "--tenant", tenant, "--json", expect=expect)
    return {s["name"]: (s["action"], s["detail"]) for s in json.loads(done.stdout)["steps"]}


def actions(steps: dict[str, tuple[str, str]]) -> dict[str, str]:
    return {name: action for name, (action, _detail) in steps.items()}


def tasks(cli: Cli) -> dict[str, dict[str, Any]]:
    page = cli.json("task", "list", "--tenant", TENANT, "--limit", "100")
    return {task["name"]: task for task in page["items"]}


def check_the_four_runs(
    cli: Cli, command: tuple[str, ...], imported: set[str], refused: set[str], change: Any
) -> dict[str, tuple[str, str]]:
    """Dry run, import, import again, change one entry (``change()``), import again:
    returns the last plan."""
    expect = 2 if refused else 0
    dry = plan(cli, *command, "--dry-run", expect=expect)
    assert actions(dry) == {
        **dict.fromkeys(imported, "create"),
        **dict.fromkeys(refused, "refused"),
    }
    assert tasks(cli) == {}, "a dry run changed something"
    assert actions(plan(cli, *command, expect=expect)) == actions(dry)
    assert set(tasks(cli)) == imported
    again = plan(cli, *command, expect=expect)
    assert actions(again) == {
        **dict.fromkeys(imported, "unchanged"),
        **dict.fromkeys(refused, "refused"),
    }
    change()
    changed = plan(cli, *command, expect=expect)
    assert sorted(actions(changed).values()).count("update") == 1, changed
    return changed


# --- celery beat and sync ----------------------------------------------------------------


def test_a_beat_schedule_module_is_imported(cli: Cli) -> None:
    app = cli.directory / "beatapp.py"
    app.write_text(BEATAPP.read_text())
    imported = {"nightly-report", "refresh-rates", "ping-every-10s"}

    def change() -> None:
        app.write_text(
            app.read_text().replace("crontab(minute=30, hour=2)", "crontab(minute=45, hour=2)")
        )

    last = check_the_four_runs(
        cli, ("import", "celery-beat", "beatapp:app"), imported, {"ping-at-sunrise"}, change
    )
    assert last["nightly-report"] == ("update", "schedule")
    assert "solar schedule (sunrise)" in last["ping-at-sunrise"][1]
    found = tasks(cli)
    assert found["nightly-report"]["schedule"] == {
        "cron": "45 2 * * *",
        "timezone": "Europe/Berlin",
    }
    assert found["nightly-report"]["target"]["celery"] == {
        "task": "beatapp.reports.nightly",
        "args": [1],
        "kwargs": {"region": "eu"},
        "queue": "reports",
        "broker": "default",
        "track": False,
        "expires_seconds": 600.0,
    }
    assert found["refresh-rates"]["schedule"] == {"interval_seconds": 300}


def test_sync_makes_the_tasks_match_the_app_and_prunes_what_it_made(cli: Cli) -> None:
    app = cli.directory / "beatapp.py"
    app.write_text(BEATAPP.read_text())
    declared = {"beatapp.cleanup", "weekday-digest"}
    beat = {"nightly-report", "refresh-rates", "ping-every-10s"}
    first = plan(cli, "sync", "beatapp:app", expect=2)
    assert actions(first) == {
        **dict.fromkeys(beat | declared, "create"),
        "ping-at-sunrise": "refused",
    }
    found = tasks(cli)
    assert found["weekday-digest"]["tags"] == {"taskhub-sync": "beatapp:app"}
    assert found["weekday-digest"]["schedule"] == {
        "cron": "0 8 * * 1-5",
        "timezone": "Europe/Berlin",
    }
    # A task of the tenant's own, not made by a sync: a prune never touches it.
    own = {
        "name": "own",
        "schedule": {"interval_seconds": 60},
        "target": {"url": "https://example.com/"},
    }
    cli("task", "add", "-", "--tenant", TENANT, stdin=json.dumps(own))

    app.write_text(app.read_text().replace('@periodic("*/5 * * * *", timezone="UTC")\n', ""))
    dry = plan(cli, "sync", "beatapp:app", "--prune", "--dry-run", expect=2)
    assert dry["beatapp.cleanup"] == ("delete", "no longer declared")
    assert "beatapp.cleanup" in tasks(cli)
    pruned = plan(cli, "sync", "beatapp:app", "--prune", expect=2)
    assert actions(pruned) == {
        **dict.fromkeys(beat | {"weekday-digest"}, "unchanged"),
        "ping-at-sunrise": "refused",
        "beatapp.cleanup": "delete",
    }
    assert set(tasks(cli)) == beat | {"weekday-digest", "own"}


def test_the_app_is_found_in_the_current_directory_as_celery_a_finds_it(cli: Cli) -> None:
    (cli.directory / "beatapp.py").write_text(BEATAPP.read_text())
    done = cli("import", "celery-beat", "beatapp", "--tenant", TENANT, "--dry-run", expect=2)
    assert "nightly-report" in done.stdout
    missing = cli("import", "celery-beat", "nowhere:app", "--tenant", TENANT, expect=2)
    assert "cannot load 'nowhere:app'" in missing.stderr
    # A tenant's quotas hold as for any task: said in the plan, the rest imported.
    quota = plan(cli, "import", "celery-beat", "beatapp:app", tenant="strict", expect=2)
    assert quota["ping-every-10s"] == (
        "refused",
        "schedule.interval_seconds: must be at least 60: the tenant's min_interval_seconds limit",
    )
    assert quota["nightly-report"] == ("create", "")
    # Tasks send to a broker the operator configured, never to one a tenant names.
    unknown = plan(cli, "import", "celery-beat", "beatapp:app", "--broker", "nope", expect=2)
    assert unknown["nightly-report"][0] == "refused"
    assert unknown["nightly-report"][1].startswith("target.celery.broker: ")


# --- django-celery-beat ---------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def django_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """django-celery-beat's database, its tables made by its own migrations: a SQLite
    file, or a PostgreSQL database of this test's own (dropped afterwards)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'django.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    django_beat.run("migrate", url)
    return url


def test_django_celery_beat_tables_are_imported(cli: Cli, django_url: str) -> None:
    django_beat.run("populate", django_url)
    command = ("import", "django-celery-beat", "--database-url", django_url)
    last = check_the_four_runs(
        cli,
        command,
        set(django_beat.IMPORTED),
        {django_beat.REFUSED},
        lambda: django_beat.run("change", django_url),
    )
    assert last["every-30s"] == ("update", "schedule")
    found = tasks(cli)
    assert found["every-30s"]["schedule"] == {"interval_seconds": 45}
    paris = found["every-15-min-paris"]
    assert paris["schedule"] == {"cron": "*/15 9-17 * * 1-5", "timezone": "Europe/Paris"}
    assert paris["target"]["celery"]["queue"] == "reports"
    assert paris["target"]["celery"]["expires_seconds"] == 60.0
    assert found["once-2030"]["schedule"] == {"at": "2030-01-01T12:00:00+00:00"}
    assert found["paused-hourly"]["status"] == "paused"
    assert found["paused-hourly"]["paused_reason"] == DISABLED_AT_SOURCE


def test_an_unreadable_django_database_is_bad_input(cli: Cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    done = cli("import", "django-celery-beat", "--database-url", url, "--tenant", TENANT, expect=2)
    assert "cannot read django-celery-beat's tables" in done.stderr


# --- redbeat ------------------------------------------------------------------------------


@pytest.fixture
def redbeat_app(redis_url: str) -> Iterator[Celery]:
    """A user's app with redbeat's settings: its keys under a prefix of this test's own in
    the run's Redis db, deleted afterwards."""
    prefix = f"redbeat-{uuid.uuid4().hex[:8]}:"
    app = Celery("redbeatapp", set_as_current=False)
    app.conf.update(redbeat_redis_url=redis_url, redbeat_key_prefix=prefix)
    yield app
    client = redis.Redis.from_url(redis_url)
    with client:
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)


def test_redbeat_entries_are_imported(cli: Cli, redis_url: str, redbeat_app: Celery) -> None:
    def save(name: str, task: str, when: Any, **fields: Any) -> None:
        RedBeatSchedulerEntry(name, task, when, app=redbeat_app, **fields).save()

    weekdays = crontab(minute=0, hour=9, day_of_week="mon-fri")
    save("weekday-report", "billing.report", weekdays, args=[1], kwargs={"region": "eu"})
    every_30s = schedule(run_every=30)
    save("ping", "billing.ping", every_30s, options={"queue": "pings", "expires": 20})
    save("off", "billing.ping", schedule(run_every=300), enabled=False)
    save("every-5-min-rrule", "billing.ping", rrule("MINUTELY", interval=5))
    prefix = redbeat_app.conf.redbeat_key_prefix
    command = (
        "import",
        "redbeat",
        "--redis-url",
        redis_url,
        "--key-prefix",
        prefix,
        "--timezone",
        "Europe/Berlin",
    )

    def change() -> None:
        save("ping", "billing.ping", every_30s, options={"queue": "pings", "expires": 25})

    last = check_the_four_runs(
        cli, command, {"weekday-report", "ping", "off"}, {"every-5-min-rrule"}, change
    )
    assert last["ping"] == ("update", "target")
    assert "rrule schedule" in last["every-5-min-rrule"][1]
    found = tasks(cli)
    assert found["weekday-report"]["schedule"] == {
        "cron": "0 9 * * 1-5",
        "timezone": "Europe/Berlin",
    }
    assert found["ping"]["target"]["celery"]["expires_seconds"] == 25.0
    assert found["ping"]["target"]["celery"]["queue"] == "pings"
    assert found["off"]["status"] == "paused"
