"""The fast and slow lanes and each host's and tenant's share of them
(``taskhub.engine.lanes``), through :func:`fire` against loopback targets."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from taskhub.core.messages import TriggerOutcome
from taskhub.engine.firing import fire
from tests.support.messages import req
from tests.unit.firing.support import (
    Target,
    lanes_only,
    make_settings,
)


def test_connector_limit_bounds_in_flight_without_blaming_targets(target: Target) -> None:
    # 2 slots, 6 requests of 0.3 s each: they queue for a slot, and waiting is not timed.
    narrow = lanes_only(TASKHUB_MAX_IN_FLIGHT="2", TASKHUB_MAX_SLOW_IN_FLIGHT="0")
    requests = [
        req(f"http://127.0.0.1:{target.port}/sleep/0.3", execution_id=i, timeout_s=0.8)
        for i in range(6)
    ]
    t0 = time.monotonic()
    outcomes = fire(requests, narrow)
    elapsed = time.monotonic() - t0
    assert all(o.http_status == 200 for o in outcomes), [o.error for o in outcomes]
    assert elapsed >= 0.85  # three waves of two
    assert all(o.duration_ms < 800 for o in outcomes)


def _most_at_once(outcomes: list[TriggerOutcome]) -> int:
    """The most attempts in flight at one instant, from the attempts' own clocks (an
    end is taken 1 ms early: ``duration_ms`` is rounded, the next start follows it)."""
    edges: list[tuple[float, int]] = []
    for o in outcomes:
        start = o.started_at.timestamp()
        edges += [(start, 1), (start + o.duration_ms / 1000 - 0.001, -1)]
    now = most = 0
    for _, step in sorted(edges):
        now += step
        most = max(most, now)
    return most


def test_hanging_requests_move_to_the_slow_lane_and_free_the_fast_one(target: Target) -> None:
    # One fast slot, both hung requests first in the batch: without the slow lane the
    # quick ones would wait for the hung ones' timeouts.
    lanes = make_settings(
        TASKHUB_MAX_IN_FLIGHT="1",
        TASKHUB_MAX_SLOW_IN_FLIGHT="10",
        TASKHUB_SLOW_AFTER_SECONDS="0.05",
    )
    base = f"http://127.0.0.1:{target.port}"
    requests = [req(f"{base}/sleep/10", execution_id=i, timeout_s=2) for i in range(2)]
    requests += [req(f"{base}/status/204", execution_id=10 + i) for i in range(4)]
    outcomes = fire(requests, lanes)
    hung, quick = outcomes[:2], outcomes[2:]
    assert [o.error_kind for o in hung] == ["timeout", "timeout"]
    assert [o.http_status for o in quick] == [204] * 4
    hung_end = min(o.started_at.timestamp() + o.duration_ms / 1000 for o in hung)
    assert all(o.started_at.timestamp() < hung_end for o in quick)
    assert all(o.duration_ms >= 2000 for o in hung)  # their clocks ran in the slow lane too


def test_a_full_slow_lane_keeps_attempts_in_the_fast_one(target: Target) -> None:
    lanes = lanes_only(
        TASKHUB_MAX_IN_FLIGHT="1", TASKHUB_MAX_SLOW_IN_FLIGHT="1", TASKHUB_SLOW_AFTER_SECONDS="0.05"
    )
    requests = [
        req(f"http://127.0.0.1:{target.port}/sleep/0.4", execution_id=i, timeout_s=2)
        for i in range(4)
    ]
    outcomes = fire(requests, lanes)
    assert [o.http_status for o in outcomes] == [200] * 4
    assert _most_at_once(outcomes) == 2  # one slow, one fast, never more


def test_no_slow_lane_means_one_limit(target: Target) -> None:
    single = lanes_only(TASKHUB_MAX_IN_FLIGHT="2", TASKHUB_MAX_SLOW_IN_FLIGHT="0")
    requests = [
        req(f"http://127.0.0.1:{target.port}/sleep/0.3", execution_id=i, timeout_s=2)
        for i in range(5)
    ]
    outcomes = fire(requests, single)
    assert [o.http_status for o in outcomes] == [200] * 5
    assert _most_at_once(outcomes) == 2


#: 4 fast and 8 slow slots; a host or tenant holds at most 1 fast (25 %) and 4 slow (50 %).
SHARED = make_settings(
    TASKHUB_MAX_IN_FLIGHT="4",
    TASKHUB_MAX_SLOW_IN_FLIGHT="8",
    TASKHUB_SLOW_AFTER_SECONDS="0.05",
    TASKHUB_FAST_LANE_SHARE_PERCENT="25",
    TASKHUB_SLOW_LANE_SHARE_PERCENT="50",
)


def test_a_hung_tenant_holds_its_share_and_the_others_are_not_delayed(target: Target) -> None:
    # 12 requests of one tenant to a host that does not answer in time: 4 move to the
    # slow lane, 1 stays stuck in the fast one, the other 7 are not sent (throttled).
    # Then another tenant's requests, to another host, find the fast lane open.
    hung = [
        req(f"http://127.0.0.1:{target.port}/sleep/10", execution_id=i, timeout_s=1.5, tenant="a")
        for i in range(12)
    ]
    later = datetime.now(UTC) + timedelta(seconds=0.5)  # once the hung ones hold their share
    quick = [
        req(
            f"http://localhost:{target.port}/status/204",
            execution_id=100 + i,
            tenant="b",
            not_before=later,
        )
        for i in range(6)
    ]
    outcomes = fire(hung + quick, SHARED)
    by_id = {o.execution_id: o for o in outcomes}
    attempted = [by_id[i] for i in range(12) if by_id[i].error_kind == "timeout"]
    throttled = [by_id[i] for i in range(12) if by_id[i].error_kind == "throttled"]
    assert (len(attempted), len(throttled)) == (5, 7), [o.error_kind for o in outcomes]
    assert all(o.duration_ms == 0 and o.retry_after_s == 1.5 for o in throttled)
    assert all(TriggerOutcome.from_message(o.to_message()) == o for o in throttled)
    first_hung_end = min(o.started_at.timestamp() + o.duration_ms / 1000 for o in attempted)
    for i in range(6):
        assert by_id[100 + i].http_status == 204
        assert by_id[100 + i].started_at.timestamp() < first_hung_end  # not behind them


def test_a_tenant_holds_its_share_across_hosts(target: Target) -> None:
    hosts = ["127.0.0.1", "localhost"]
    hung = [
        req(
            f"http://{hosts[i % 2]}:{target.port}/sleep/10",
            execution_id=i,
            timeout_s=1,
            tenant="a",
        )
        for i in range(12)
    ]
    outcomes = fire(hung, SHARED)
    kinds = Counter(o.error_kind for o in outcomes)
    assert kinds == {"timeout": 5, "throttled": 7}  # each host alone would allow 5


def test_without_shares_one_host_may_hold_every_slot(target: Target) -> None:
    unshared = replace(SHARED, fast_lane_share_percent=100.0, slow_lane_share_percent=100.0)
    hung = [
        req(f"http://127.0.0.1:{target.port}/sleep/10", execution_id=i, timeout_s=1, tenant="a")
        for i in range(12)
    ]
    outcomes = fire(hung, unshared)
    assert Counter(o.error_kind for o in outcomes) == {"timeout": 12}  # 12 = 4 fast + 8 slow


def test_a_quick_host_alone_may_use_the_whole_fast_lane(target: Target) -> None:
    # Young attempts that end quickly never count against the host's share: 40 quick
    # requests to one host are all sent, 4 at a time (not 1, the fast share).
    quick = [
        req(f"http://127.0.0.1:{target.port}/sleep/0.02", execution_id=i, tenant="a")
        for i in range(40)
    ]
    outcomes = fire(quick, SHARED)
    assert [o.http_status for o in outcomes] == [200] * 40
    assert _most_at_once(outcomes) > 1
