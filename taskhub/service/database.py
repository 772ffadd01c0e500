"""The database as the API and the CLI reach it: this process's engine for a URL, the
schema's upgrade, and what a health check reads. They never touch ``taskhub.db``
themselves, so its SQL and tables can change behind the service."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from taskhub.db import engines, metric_queries, schema
from taskhub.observability import metric_names


def engine_for(url: str) -> Engine:
    """This process's engine for ``url`` (one per URL and process)."""
    return engines.get_engine(url)


def upgrade(url: str) -> None:
    """Create or migrate the schema (Alembic) at ``url``."""
    schema.upgrade(url)


def last_tick_timestamp(engine: Engine) -> float | None:
    """When the last tick ended (Unix time), None if none has; raises SQLAlchemyError
    if the database does not answer."""
    with engine.connect() as conn:
        return metric_queries.read_counters(conn).get((metric_names.LAST_TICK, ""))
