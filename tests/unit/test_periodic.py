"""``@periodic``: a schedule declared beside a Celery task, in either order of the
decorators, seen by the app that has the task and by no other, and light to import in a
user's worker."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from celery import Celery

from taskhub.periodic import Periodic, declarations, periodic


def _app(name: str) -> Celery:
    return Celery(name, set_as_current=False)


def test_either_order_declares_the_schedule_on_the_app_that_has_the_task() -> None:
    first, second = _app("first"), _app("second")

    @periodic("*/5 * * * *", timezone="Europe/Berlin")
    @first.task(name="first.above", shared=False)
    def above() -> int:
        return 1

    @first.task(name="first.below", shared=False, bind=True)
    @periodic(60, name="every-minute")
    @periodic(timedelta(hours=1), name="hourly", args=[1], queue="slow", expires=30)
    def below(self: object, n: int = 0) -> int:
        return n

    @second.task(name="second.other", shared=False)
    @periodic("0 9 * * *")
    def other() -> None:
        pass

    assert declarations(first) == [
        ("first.above", Periodic("*/5 * * * *", "Europe/Berlin")),
        ("first.below", Periodic(60, name="every-minute")),
        (
            "first.below",
            Periodic(timedelta(hours=1), name="hourly", args=(1,), queue="slow", expires=30),
        ),
    ]
    assert declarations(second) == [("second.other", Periodic("0 9 * * *"))]
    # The decorated tasks are the tasks Celery made, and still run.
    assert first.tasks["first.above"].run() == 1
    assert above.name == "first.above"


def test_an_already_finalized_app_works_too() -> None:
    app = _app("finalized")
    app.finalize()

    @periodic(30)
    @app.task(name="finalized.now", shared=False)
    def now() -> None:
        pass

    assert declarations(app) == [("finalized.now", Periodic(30))]


_SHARED_TASKS = """
from celery import Celery, shared_task
from taskhub.periodic import Periodic, declarations, periodic

@shared_task(name="shared.below")
@periodic("0 0 * * *")
def below():
    pass

try:
    @periodic("0 0 * * *")
    @shared_task(name="shared.above")
    def above():
        pass
except TypeError as error:
    assert "below @shared_task" in str(error), error
else:
    raise AssertionError("@periodic above @shared_task was accepted")
assert declarations(Celery("any")) == [("shared.below", Periodic("0 0 * * *"))]
"""


def test_a_shared_task_takes_it_directly_above_its_function() -> None:
    # In a process of its own: a shared task is registered on every app made after it.
    subprocess.run([sys.executable, "-c", _SHARED_TASKS], check=True, timeout=60)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("*/5 * * *",), {}, "expected 5 fields"),
        (("0 9 * * *",), {"timezone": "Mars/Olympus"}, "unknown time zone"),
        ((60,), {"timezone": "UTC"}, "cron schedule only"),
    ],
)
def test_a_bad_declaration_fails_at_import(
    args: tuple[object, ...], kwargs: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        periodic(*args, **kwargs)  # type: ignore[arg-type]


def test_importing_it_loads_no_database_or_web_framework() -> None:
    """It runs in the user's workers: no SQLAlchemy, no FastAPI, nothing of the server."""
    check = (
        "import sys, taskhub.periodic\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules}"
        " & {'sqlalchemy', 'fastapi', 'starlette', 'alembic', 'psycopg', 'aiohttp'})\n"
        "assert not heavy, heavy\n"
        "assert not [m for m in sys.modules if m.startswith('taskhub.')"
        " and not m.startswith(('taskhub.core', 'taskhub.periodic'))]\n"
    )
    subprocess.run([sys.executable, "-c", check], check=True, timeout=60)
