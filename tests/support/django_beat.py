"""django-celery-beat driven as its users drive it, in a process of its own (Django's
settings are one per process): ``python -m tests.support.django_beat STEP`` with the
database in ``TASKHUB_TEST_DJANGO_DATABASE``. ``migrate`` makes its tables with its own
migrations; ``populate`` saves periodic tasks through Django's ORM; ``change`` changes
one of them (``every-30s`` runs every 45 seconds).

The tests call :func:`run`; this module's other functions run only in that process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

#: What ``populate`` saves: the names the import tests expect, the refused one last.
IMPORTED = ("every-15-min-paris", "every-30s", "once-2030", "paused-hourly")
REFUSED = "at-sunrise-paris"


def run(step: str, database_url: str) -> None:
    """Run ``step`` on the database at ``database_url`` in a fresh process."""
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="tests.support.django_settings",
        TASKHUB_TEST_DJANGO_DATABASE=database_url,
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run(
        [sys.executable, "-m", "tests.support.django_beat", step],
        cwd=root,
        env=env,
        check=True,
        timeout=120,
    )


def _populate() -> None:
    from zoneinfo import ZoneInfo

    from django_celery_beat.models import (
        ClockedSchedule,
        CrontabSchedule,
        IntervalSchedule,
        PeriodicTask,
        SolarSchedule,
    )

    paris = CrontabSchedule.objects.create(
        minute="*/15", hour="9-17", day_of_week="mon-fri", timezone=ZoneInfo("Europe/Paris")
    )
    every_30s = IntervalSchedule.objects.create(every=30, period=IntervalSchedule.SECONDS)
    hourly = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    clocked = ClockedSchedule.objects.create(clocked_time=datetime(2030, 1, 1, 12, tzinfo=UTC))
    sunrise = SolarSchedule.objects.create(event="sunrise", latitude=48.8566, longitude=2.3522)
    common = {"task": "billing.tasks.report", "args": json.dumps(["a", 1])}
    PeriodicTask.objects.create(
        name="every-15-min-paris",
        crontab=paris,
        kwargs=json.dumps({"k": "v"}),
        queue="reports",
        expire_seconds=60,
        **common,
    )
    PeriodicTask.objects.create(name="every-30s", interval=every_30s, **common)
    PeriodicTask.objects.create(name="once-2030", clocked=clocked, one_off=True, **common)
    PeriodicTask.objects.create(name="paused-hourly", interval=hourly, enabled=False, **common)
    PeriodicTask.objects.create(name=REFUSED, solar=sunrise, **common)


def _change() -> None:
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    task = PeriodicTask.objects.get(name="every-30s")
    task.interval = IntervalSchedule.objects.create(every=45, period=IntervalSchedule.SECONDS)
    task.save()


def main(step: str) -> None:
    import django
    from django.core.management import call_command

    django.setup()
    if step == "migrate":
        call_command("migrate", verbosity=0)
    elif step == "populate":
        _populate()
    elif step == "change":
        _change()
    else:
        raise SystemExit(f"unknown step {step!r}")


if __name__ == "__main__":
    main(sys.argv[1])
