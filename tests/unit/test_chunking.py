from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskhub.core.chunking import chunks, pack


@pytest.mark.parametrize(
    ("n", "size", "expected"),
    [(0, 3, []), (1, 3, [1]), (3, 3, [3]), (7, 3, [3, 3, 1]), (10, 1, [1] * 10)],
)
def test_chunks_table(n: int, size: int, expected: list[int]) -> None:
    assert [len(c) for c in chunks(list(range(n)), size)] == expected


def test_pack_cuts_by_count_and_by_bytes() -> None:
    items = [10, 10, 10, 50, 10, 100, 1]
    packed = pack(items, max_count=3, max_bytes=40, size_of=lambda i: i)
    assert packed == [[10, 10, 10], [50], [10], [100], [1]]


@given(
    items=st.lists(st.integers(min_value=1, max_value=500), max_size=200),
    max_count=st.integers(min_value=1, max_value=50),
    max_bytes=st.integers(min_value=1, max_value=2000),
)
def test_pack_keeps_order_and_respects_limits(
    items: list[int], max_count: int, max_bytes: int
) -> None:
    packed = pack(items, max_count=max_count, max_bytes=max_bytes, size_of=lambda i: i)
    assert [i for group in packed for i in group] == items
    for group in packed:
        assert 1 <= len(group) <= max_count
        assert sum(group) <= max_bytes or len(group) == 1


@given(items=st.lists(st.integers(), max_size=300), size=st.integers(min_value=1, max_value=40))
def test_chunks_partition(items: list[int], size: int) -> None:
    parts = chunks(items, size)
    assert [i for part in parts for i in part] == items
    assert all(1 <= len(p) <= size for p in parts)


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        chunks([1], 0)
    with pytest.raises(ValueError):
        pack([1], max_count=0, max_bytes=1, size_of=lambda i: i)
