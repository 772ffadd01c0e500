"""Rows as one JSON parameter (PostgreSQL's json_to_recordset): exact UTC instants, and
the same rows as SQLite's bind values."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import NamedTuple
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from taskhub.db.json_rows import json_value
from taskhub.db.models import UTCDateTime
from taskhub.db.recordsets import Recordset

zones = st.sampled_from(
    [UTC, timezone(timedelta(0)), timezone(timedelta(hours=8)), ZoneInfo("Asia/Taipei")]
)
instants = st.datetimes(timezones=zones)


class Row(NamedTuple):
    id: uuid.UUID | str
    at: datetime | None
    number: int | None
    note: str | None


ROWS = Recordset(Row, id=sa.Uuid(), at=UTCDateTime(), number=sa.Integer(), note=sa.Text())
rows = st.lists(
    st.builds(
        Row,
        st.uuids() | st.uuids().map(str),
        instants | st.none(),
        st.integers() | st.none(),
        st.text() | st.none(),
    ),
    max_size=20,
)


@given(rows)
def test_rows_encode_as_each_value_alone(given_rows: list[Row]) -> None:
    expected = json.dumps(
        [
            {
                "id": str(r.id),
                "at": None if r.at is None else json_value(r.at),
                "number": r.number,
                "note": r.note,
            }
            for r in given_rows
        ],
        separators=(",", ":"),
    )
    assert ROWS.json(given_rows) == expected


@given(rows)
def test_sqlite_binds_each_field_under_its_b_name(given_rows: list[Row]) -> None:
    assert ROWS.binds(given_rows) == [
        {"b_id": uuid.UUID(str(r.id)), "b_at": r.at, "b_number": r.number, "b_note": r.note}
        for r in given_rows
    ]


def test_equal_instants_in_other_zones_are_the_same_utc_text() -> None:
    at = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    taipei = at.astimezone(ZoneInfo("Asia/Taipei"))
    one = uuid.UUID(int=1)
    encoded = json.loads(ROWS.json([Row(one, at, 1, None), Row(one, taipei, 2, "x")]))
    assert [r["at"] for r in encoded] == ["2026-11-22T09:00:00+00:00"] * 2
    assert encoded[0]["id"] == str(one)


def test_a_naive_instant_is_refused_even_beside_its_aware_twin() -> None:
    aware = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    one = uuid.UUID(int=1)
    with pytest.raises(ValueError, match="naive"):
        ROWS.json([Row(one, aware, 1, None), Row(one, aware.replace(tzinfo=None), 1, None)])


def test_the_types_must_name_the_fields_in_order() -> None:
    with pytest.raises(ValueError, match="in order"):
        Recordset(Row, at=UTCDateTime(), id=sa.Uuid(), number=sa.Integer(), note=sa.Text())


TABLE = sa.Table(
    "rows",
    sa.MetaData(),
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("at", UTCDateTime()),
    sa.Column("note", sa.String(40)),
)


def test_a_recordset_of_a_table_takes_each_columns_type() -> None:
    of_table = Recordset.of_table(Row, TABLE, number=sa.Integer())
    with sa.create_engine("sqlite://").connect() as conn:
        sqlite = of_table.source(conn)
    assert [type(c.type) for c in sqlite.columns.values()] == [
        sa.Uuid,
        UTCDateTime,
        sa.Integer,
        sa.String,
    ]
    one = uuid.UUID(int=1)
    at = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    given_rows = [Row(str(one), at, 1, "x"), Row(one, None, None, None)]
    assert of_table.json(given_rows) == ROWS.json(given_rows)
    assert of_table.binds(given_rows) == ROWS.binds(given_rows)


def test_a_field_of_no_column_needs_its_type() -> None:
    with pytest.raises(ValueError, match="no column of rows"):
        Recordset.of_table(Row, TABLE)
    with pytest.raises(ValueError, match="name no field"):
        Recordset.of_table(Row, TABLE, number=sa.Integer(), other=sa.Integer())
