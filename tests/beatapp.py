"""A user's Celery app as ``taskhub import celery-beat`` and ``taskhub sync`` read it: a
``beat_schedule`` with a crontab, intervals and a solar entry (refused), and schedules
declared with ``@periodic`` in both orders. It imports nothing of taskhub but
``taskhub.periodic``. The integration tests copy this file into a folder of their own
(as ``beatapp.py``) and change it there.

Its tasks are not shared (``shared=False``): Celery would otherwise register them on
every app of the process, the tests' own included.
"""

from __future__ import annotations

from datetime import timedelta

from celery import Celery
from celery.schedules import crontab, solar

from taskhub.periodic import periodic

app = Celery("beatapp", set_as_current=False)
app.conf.update(
    timezone="Europe/Berlin",
    task_routes={"beatapp.reports.*": {"queue": "reports"}},
)
app.conf.beat_schedule = {
    "nightly-report": {
        "task": "beatapp.reports.nightly",
        "schedule": crontab(minute=30, hour=2),
        "args": [1],
        "kwargs": {"region": "eu"},
        "options": {"expires": 600},
    },
    "refresh-rates": {
        "task": "beatapp.refresh_rates",
        "schedule": timedelta(minutes=5),
        "options": {"queue": "rates"},
    },
    "ping-every-10s": {"task": "beatapp.ping", "schedule": 10.0},
    "ping-at-sunrise": {"task": "beatapp.ping", "schedule": solar("sunrise", 52.52, 13.40)},
}


@periodic("*/5 * * * *", timezone="UTC")
@app.task(name="beatapp.cleanup", shared=False)
def cleanup() -> None:
    """Declared above ``@app.task``."""


@app.task(name="beatapp.digest", shared=False)
@periodic("0 8 * * 1-5", name="weekday-digest", kwargs={"kind": "short"})
def digest(kind: str) -> str:
    """Declared below ``@app.task``, named, with arguments, in the app's time zone."""
    return kind
