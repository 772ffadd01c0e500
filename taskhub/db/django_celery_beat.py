"""django-celery-beat's tables, read (never written) for ``taskhub import
django-celery-beat``: their columns as its migrations make them (version 2.x), declared
here so that neither Django nor django-celery-beat is needed to read them.

Django stores instants in UTC (``USE_TZ``, its default): on PostgreSQL as
``timestamp with time zone``, on SQLite as naive text, read here as naive datetimes that
the caller takes as UTC.
"""

from __future__ import annotations

from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.pool import NullPool

from taskhub.db.engines import PG_CONNECT_TIMEOUT_S, normalize_url

metadata: Final = sa.MetaData()

periodic_tasks: Final = sa.Table(
    "django_celery_beat_periodictask",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String),
    sa.Column("task", sa.String),
    sa.Column("args", sa.Text),
    sa.Column("kwargs", sa.Text),
    sa.Column("queue", sa.String),
    sa.Column("exchange", sa.String),
    sa.Column("routing_key", sa.String),
    sa.Column("headers", sa.Text),
    sa.Column("priority", sa.Integer),
    sa.Column("expires", sa.DateTime(timezone=True)),
    sa.Column("expire_seconds", sa.Integer),
    sa.Column("one_off", sa.Boolean),
    sa.Column("start_time", sa.DateTime(timezone=True)),
    sa.Column("enabled", sa.Boolean),
    sa.Column("total_run_count", sa.Integer),
    sa.Column("interval_id", sa.Integer),
    sa.Column("crontab_id", sa.Integer),
    sa.Column("solar_id", sa.Integer),
    sa.Column("clocked_id", sa.Integer),
)
crontab_schedules: Final = sa.Table(
    "django_celery_beat_crontabschedule",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("minute", sa.String),
    sa.Column("hour", sa.String),
    sa.Column("day_of_week", sa.String),
    sa.Column("day_of_month", sa.String),
    sa.Column("month_of_year", sa.String),
    sa.Column("timezone", sa.String),
)
interval_schedules: Final = sa.Table(
    "django_celery_beat_intervalschedule",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("every", sa.Integer),
    sa.Column("period", sa.String),
)
clocked_schedules: Final = sa.Table(
    "django_celery_beat_clockedschedule",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("clocked_time", sa.DateTime(timezone=True)),
)
solar_schedules: Final = sa.Table(
    "django_celery_beat_solarschedule",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("event", sa.String),
)

P = periodic_tasks.c
C = crontab_schedules.c
I = interval_schedules.c  # noqa: E741 - the interval table's columns, as P and C
K = clocked_schedules.c
S = solar_schedules.c

#: Each periodic task with its schedule's columns (a row has exactly one schedule).
_TASKS_WITH_SCHEDULES: Final = (
    sa.select(
        P.name,
        P.task,
        P.args,
        P.kwargs,
        P.queue,
        P.exchange,
        P.routing_key,
        P.headers,
        P.priority,
        P.expires,
        P.expire_seconds,
        P.one_off,
        P.start_time,
        P.enabled,
        P.total_run_count,
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
        (P.crontab_id.is_not(None)).label("has_crontab"),
        (P.interval_id.is_not(None)).label("has_interval"),
        (P.clocked_id.is_not(None)).label("has_clocked"),
        (P.solar_id.is_not(None)).label("has_solar"),
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
