"""`taskhub stats`' figures and view, from rows (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskhub.observability import stats

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([], 0.5, None), ([3.0], 0.99, 3.0), ([1, 2, 3, 4], 0.5, 2), ([1, 2, 3, 4], 0.99, 4)],
)
def test_quantile_table(values: list[float], q: float, expected: float | None) -> None:
    assert stats.quantile(values, q) == expected


@given(
    st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=100),
    st.floats(min_value=0.01, max_value=1),
    st.floats(min_value=0.01, max_value=1),
)
def test_quantile_is_a_value_and_grows_with_q(values: list[float], a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert stats.quantile(values, low) in values
    assert stats.quantile(values, low) <= stats.quantile(values, high)  # type: ignore[operator]


def attempt(
    number: int, lag_s: float, duration_ms: int, http: int | None, kind: str | None
) -> dict[str, object]:
    return {
        "number": number,
        "scheduled_for": NOW,
        "started_at": NOW + timedelta(seconds=lag_s),
        "duration_ms": duration_ms,
        "http_status": http,
        "error_kind": kind,
    }


def figures() -> stats.Figures:
    return stats.summarize(
        now=NOW + timedelta(seconds=30),
        window_s=60,
        task_states={(True, False): 3, (False, False): 1, (True, True): 2},
        paused_by={"auto_pause": 1},
        execution_statuses={"succeeded": 5, "dead": 1},
        backlog=2,
        oldest_due=NOW,
        stored={
            ("taskhub_last_tick_timestamp_seconds", ""): (NOW + timedelta(seconds=20)).timestamp(),
            ("taskhub_tick_duration_seconds_sum", ""): 0.5,
            ("taskhub_tick_duration_seconds_count", ""): 5,
        },
        attempts=[
            attempt(1, 0.5, 100, 200, None),
            attempt(1, 1.5, 300, 200, None),
            attempt(1, 2.5, 2000, None, "timeout"),
            attempt(2, 40, 2000, None, "timeout"),
        ],
        heartbeats=[
            {
                "process": "trigger@host:42",
                "role": "trigger",
                "rss_bytes": 95e6,
                "in_flight": 7,
                "db_pool_checked_out": 0,
                "db_pool_size": 5,
                "db_queries": 0,
                "db_query_seconds": 0.0,
                "seen_at": NOW + timedelta(seconds=25),
            }
        ],
    )


def test_summarize() -> None:
    f = figures()
    assert f.tasks == {"active": 3, "paused": 1, "finished": 2} and f.tasks_auto_paused == 1
    assert f.due_backlog == 2 and f.oldest_due_age_s == 30
    assert f.last_tick_age_s == 10 and f.tick_duration_avg_s == 0.1
    assert (f.attempts, f.attempts_per_minute, f.timeouts, f.retries) == (4, 4.0, 2, 1)
    assert f.success_rate == 0.5
    # Lag counts first attempts only: 0.5, 1.5, 2.5.
    assert (f.fire_lag_p50_s, f.fire_lag_p99_s, f.fire_lag_max_s) == (1.5, 2.5, 2.5)
    assert (f.target_latency_p50_s, f.target_latency_p99_s) == (0.3, 2.0)
    [p] = f.processes
    assert (p.role, p.rss_mb, p.in_flight, p.db_query_avg_ms, p.seen_s_ago) == (
        "trigger",
        95.0,
        7,
        None,
        5.0,
    )


def test_render_shows_every_kpi() -> None:
    text = stats.render(figures())
    for needle in (
        "backlog      2 due",
        "success 50.0 %",
        "timeouts 2",
        "fire lag     p50 1.50 s",
        "trigger@host:42",
        "95 MB",
    ):
        assert needle in text, needle


def test_render_says_when_no_process_reports() -> None:
    empty = stats.summarize(
        now=NOW,
        window_s=300,
        task_states={},
        paused_by={},
        execution_statuses={},
        backlog=0,
        oldest_due=None,
        stored={},
        attempts=[],
        heartbeats=[],
    )
    assert empty.success_rate is None and empty.fire_lag_p99_s is None
    assert "no process has reported" in stats.render(empty)
