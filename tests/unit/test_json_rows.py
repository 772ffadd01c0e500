"""Rows as one JSON parameter (PostgreSQL's json_to_recordset): exact UTC instants."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskhub.db.json_rows import encode, json_value

zones = st.sampled_from(
    [UTC, timezone(timedelta(0)), timezone(timedelta(hours=8)), ZoneInfo("Asia/Taipei")]
)
instants = st.datetimes(timezones=zones)
values = instants | st.uuids() | st.integers() | st.booleans() | st.none() | st.text()


@given(st.lists(st.dictionaries(st.sampled_from("abcd"), values), max_size=20))
def test_rows_encode_as_each_value_alone(rows: list[dict[str, object]]) -> None:
    expected = json.dumps(rows, default=json_value, separators=(",", ":"))
    assert encode(rows) == expected


def test_equal_instants_in_other_zones_are_the_same_utc_text() -> None:
    at = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    taipei = at.astimezone(ZoneInfo("Asia/Taipei"))
    encoded = json.loads(encode([{"t": at, "u": taipei, "id": uuid.UUID(int=1)}]))
    assert encoded == [
        {
            "t": "2026-11-22T09:00:00+00:00",
            "u": "2026-11-22T09:00:00+00:00",
            "id": str(uuid.UUID(int=1)),
        }
    ]


def test_a_naive_instant_is_refused_even_beside_its_aware_twin() -> None:
    aware = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="naive"):
        encode([{"t": aware}, {"t": aware.replace(tzinfo=None)}])
