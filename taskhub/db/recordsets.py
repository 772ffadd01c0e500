"""A hot write's rows declared once for both databases.

The domain hands a hot write its rows as a ``NamedTuple`` (``taskhub.db.rows``); a
:class:`Recordset` names the SQL type of each field (a field named after a column of the
table it writes takes that column's: :meth:`Recordset.of_table`). From that one
declaration come PostgreSQL's source, ``json_to_recordset`` over one JSON parameter (one
statement, no placeholder per value to build and parse), and SQLite's, one ``b_``-named
bind parameter per field for an executemany. A statement is written once against
:meth:`Recordset.source`, so a new column is added in one place.

Values are converted a column at a time by C-level ``map`` calls (an instant's text is
computed once per distinct instant), not by a Python call per value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from taskhub.db import json_rows
from taskhub.db.dialects import as_uuid, insert

R = TypeVar("R", bound=tuple[Any, ...])


class Source(NamedTuple):
    """Where a statement reads its rows' values: ``columns[name]`` per field, and on
    PostgreSQL the common table expression ``v`` they come from (None on SQLite, where
    they are bind parameters)."""

    columns: dict[str, sa.ColumnElement[Any]]
    cte: sa.CTE | None


class Recordset(Generic[R]):
    """The rows of one hot write: a ``NamedTuple`` type and each field's SQL type."""

    def __init__(self, row: type[R], **types: sa.types.TypeEngine[Any]) -> None:
        fields: tuple[str, ...] = row._fields  # type: ignore[attr-defined]
        if tuple(types) != fields:
            raise ValueError(f"types {tuple(types)} do not name the fields {fields} in order")
        self.fields = fields
        self._binds = tuple(f"b_{name}" for name in fields)
        recordset = (
            sa.func.json_to_recordset(sa.cast(sa.bindparam("rows"), postgresql.JSON))
            .table_valued(*(sa.column(name, type_) for name, type_ in types.items()))
            .render_derived(name="r", with_types=True)
        )
        cte = sa.select(recordset).cte("v")
        self._postgresql = Source({name: cte.c[name] for name in fields}, cte)
        self._sqlite = Source(
            {name: sa.bindparam(f"b_{name}", type_=type_) for name, type_ in types.items()},
            None,
        )
        # Per field, what makes its value a JSON value (PostgreSQL) or what SQLite's
        # column binds (a task id claimed as text becomes a UUID again).
        self._to_json: list[tuple[int, Callable[[Any], Any]]] = []
        self._to_sqlite: list[tuple[int, Callable[[Any], Any]]] = []
        for i, type_ in enumerate(types.values()):
            affinity = type_._type_affinity
            if affinity is not None and issubclass(affinity, sa.Uuid):
                self._to_json.append((i, str))
                self._to_sqlite.append((i, as_uuid))
            elif affinity is not None and issubclass(affinity, sa.DateTime):
                self._to_json.append((i, json_rows.instant_text))

    @classmethod
    def of_table(
        cls, row: type[R], table: sa.Table, **types: sa.types.TypeEngine[Any]
    ) -> Recordset[R]:
        """Rows written into ``table``: a field takes its column's SQL type there, so the
        type is declared once; ``types`` give those of the fields that are no column."""
        fields: tuple[str, ...] = row._fields  # type: ignore[attr-defined]
        if unknown := set(types) - set(fields):
            raise ValueError(f"types {sorted(unknown)} name no field of {fields}")
        if untyped := [name for name in fields if name not in types and name not in table.c]:
            raise ValueError(f"fields {untyped} are no column of {table.name}: give their types")
        return cls(
            row, **{name: types[name] if name in types else table.c[name].type for name in fields}
        )

    def source(self, conn: Connection) -> Source:
        return self._postgresql if conn.dialect.name == "postgresql" else self._sqlite

    def params(self, conn: Connection, rows: Sequence[R]) -> Any:
        """The parameters to execute a statement built on :meth:`source` with."""
        if conn.dialect.name == "postgresql":
            return {"rows": self.json(rows)}
        return self.binds(rows)

    def insert(self, conn: Connection, table: sa.Table, **constants: Any) -> Any:
        """The dialect's INSERT (which knows ``ON CONFLICT``) of each row's fields into
        their columns, with ``constants`` the same in every row."""
        source = self.source(conn)
        values = {
            **source.columns,
            **{name: sa.literal(value, table.c[name].type) for name, value in constants.items()},
        }
        statement = insert(conn, table)
        if source.cte is not None:
            return statement.from_select(list(values), sa.select(*values.values()))
        return statement.values(values)

    def update_by_id(
        self, conn: Connection, table: sa.Table, rows: Sequence[R], **constants: Any
    ) -> None:
        """Write every field of each row but ``id`` into its column, by ``id``, with
        ``constants`` the same in every row."""
        columns = self.source(conn).columns
        values = {name: value for name, value in columns.items() if name != "id"}
        conn.execute(
            sa.update(table).where(table.c.id == columns["id"]).values({**values, **constants}),
            self.params(conn, rows),
        )

    def json(self, rows: Sequence[R]) -> str:
        """PostgreSQL's one parameter: the rows as a JSON array of objects."""
        values = self._columns(rows, self._to_json)
        return json_rows.encode_plain([dict(zip(self.fields, v, strict=True)) for v in values])

    def binds(self, rows: Sequence[R]) -> list[dict[str, Any]]:
        """SQLite's executemany: one mapping of ``b_``-named bind values per row."""
        values = self._columns(rows, self._to_sqlite)
        return [dict(zip(self._binds, v, strict=True)) for v in values]

    @staticmethod
    def _columns(rows: Sequence[R], converters: list[tuple[int, Callable[[Any], Any]]]) -> Any:
        if not converters or not rows:
            return rows
        columns: list[Any] = list(zip(*rows, strict=True))
        for i, convert in converters:
            columns[i] = map(convert, columns[i])
        return zip(*columns, strict=True)
