"""Alembic environment: the URL comes from taskhub.db.schema.alembic_config."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from taskhub.db.engines import create_engine
from taskhub.db.models import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is set by taskhub.db.schema.alembic_config"
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("taskhub migrations run online only: use `taskhub db upgrade`")
run_migrations_online()
