"""django-celery-beat's tables, read (never written) for ``taskhub import
django-celery-beat``: their columns as its migrations make them (version 2.x), declared
here so that neither Django nor django-celery-beat is needed to read them.

Django stores instants in UTC (``USE_TZ``, its default): on PostgreSQL as
``timestamp with time zone``, on SQLite as naive text, read here as naive datetimes that
the caller takes as UTC.
"""

from __future__ import annotations

from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.pool import NullPool

from taskhub.db.engines import PG_CONNECT_TIMEOUT_S, normalize_url

metadata: Final = sa.MetaData()
_TEXT: Final = sa.String()
_NUMBER: Final = sa.Integer()
_INSTANT: Final = sa.DateTime(timezone=True)


def _table(table: str, /, **columns: sa.types.TypeEngine[Any]) -> sa.Table:
    """``django_celery_beat_<table>``: its ``id`` and the columns read here."""
    return sa.Table(
        f"django_celery_beat_{table}",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        *(sa.Column(column, kind) for column, kind in columns.items()),
    )


periodic_tasks: Final = _table(
    "periodictask",
    name=_TEXT,
    task=_TEXT,
    args=_TEXT,
    kwargs=_TEXT,
    queue=_TEXT,
    exchange=_TEXT,
    routing_key=_TEXT,
    headers=_TEXT,
    priority=_NUMBER,
    expires=_INSTANT,
    expire_seconds=_NUMBER,
    one_off=sa.Boolean(),
    start_time=_INSTANT,
    enabled=sa.Boolean(),
    total_run_count=_NUMBER,
    interval_id=_NUMBER,
    crontab_id=_NUMBER,
    solar_id=_NUMBER,
    clocked_id=_NUMBER,
)
crontab_schedules: Final = _table(
    "crontabschedule",
    **dict.fromkeys(("minute", "hour", "day_of_week", "day_of_month", "month_of_year"), _TEXT),
    timezone=_TEXT,
)
interval_schedules: Final = _table("intervalschedule", every=_NUMBER, period=_TEXT)
clocked_schedules: Final = _table("clockedschedule", clocked_time=_INSTANT)
solar_schedules: Final = _table("solarschedule", event=_TEXT)

P = periodic_tasks.c
C = crontab_schedules.c
I = interval_schedules.c  # noqa: E741 - the interval table's columns, as P and C
K = clocked_schedules.c
S = solar_schedules.c

#: Each periodic task, all its columns, with its schedule's (exactly one of
#: ``crontab_id``, ``interval_id``, ``clocked_id`` and ``solar_id`` is set).
_TASKS_WITH_SCHEDULES: Final = (
    sa.select(
        periodic_tasks,
        C.minute,
        C.hour,
        C.day_of_week,
        C.day_of_month,
        C.month_of_year,
        C.timezone,
        I.every,
        I.period,
        K.clocked_time,
        S.event.label("solar_event"),
    )
    .select_from(
        periodic_tasks.outerjoin(crontab_schedules, P.crontab_id == C.id)
        .outerjoin(interval_schedules, P.interval_id == I.id)
        .outerjoin(clocked_schedules, P.clocked_id == K.id)
        .outerjoin(solar_schedules, P.solar_id == S.id)
    )
    .order_by(P.id)
)


def read_periodic_tasks(url: str) -> list[RowMapping]:
    """Every periodic task at ``url`` (an SQLAlchemy URL; ``postgresql://`` uses
    psycopg 3) with its schedule, in the order they were made. One short read-only
    connection: a Django database is never held."""
    url = normalize_url(url)
    postgres = url.startswith("postgresql")
    connect_args = {"connect_timeout": PG_CONNECT_TIMEOUT_S} if postgres else {}
    engine = sa.create_engine(url, poolclass=NullPool, connect_args=connect_args)
    try:
        with engine.connect() as conn:
            return list(conn.execute(_TASKS_WITH_SCHEDULES).mappings())
    finally:
        engine.dispose()
