"""The write-back's pure parts: which failure an auto-pause names."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from taskhub.core.statuses import ExecutionStatus
from taskhub.engine.writeback import Ended, _limit_reached

START = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def ended(index: int, succeeded: bool) -> Ended:
    status = ExecutionStatus.SUCCEEDED if succeeded else ExecutionStatus.DEAD
    at = START + timedelta(seconds=index)
    return Ended(at, status, at, False, None if succeeded else f"HTTP 5{index:02}")


@given(
    before=st.integers(0, 10),
    outcomes=st.lists(st.booleans(), min_size=1, max_size=20),
    limit=st.integers(1, 10),
    shuffle=st.randoms(),
)
def test_the_reason_names_the_failure_that_reached_the_limit(
    before: int, outcomes: list[bool], limit: int, shuffle: random.Random
) -> None:
    results = [ended(i, ok) for i, ok in enumerate(outcomes)]
    final = before
    for ok in outcomes:
        final = 0 if ok else final + 1
    if final < limit:
        return
    shuffle.shuffle(results)  # a chunk's outcomes come in any order
    count, reached = _limit_reached(before, results, limit)
    position = int((reached.scheduled_for - START).total_seconds())
    assert not outcomes[position]  # a failure
    after = outcomes[position + 1 :]
    assert not any(after) and count + len(after) == final  # the last run of failures
    # The limit itself, unless the run had passed it before this chunk began.
    streak_before = before if all(not ok for ok in outcomes[:position]) else 0
    assert count == max(limit, streak_before + 1)
