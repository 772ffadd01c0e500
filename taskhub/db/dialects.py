"""What differs between PostgreSQL and SQLite in how a statement is written: the
dialect's INSERT (for ``ON CONFLICT``), a list of values bound as one parameter, and a
UUID as SQLite's column binds it. The query modules call these instead of branching on
the dialect for syntax alone."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection


def insert(conn: Connection, table: sa.Table) -> Any:
    """The dialect's INSERT, which knows ``ON CONFLICT DO NOTHING``."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def one_of(
    conn: Connection, column: sa.ColumnElement[Any], values: Sequence[Any]
) -> sa.ColumnElement[bool]:
    """``column IN values``; on PostgreSQL as one array parameter (``= ANY``) rather than
    a placeholder per value, which the driver would parse for every chunk."""
    if conn.dialect.name == "postgresql":
        return column == sa.any_(
            sa.bindparam(None, list(values), type_=postgresql.ARRAY(column.type))
        )
    return column.in_(values)


def as_uuid(value: uuid.UUID | str) -> uuid.UUID:
    """A task id as SQLite's UUID column binds it (a claim reads ids as text)."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)
