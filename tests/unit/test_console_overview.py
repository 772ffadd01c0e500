"""The console overview's figures and charts, from rows (no database)."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from taskhub.api.console.charts import HEIGHT, WIDTH, sparkline
from taskhub.service import overview

NOW = datetime(2030, 1, 7, 12, 0, tzinfo=UTC)
EDGES = overview.bucket_edges(NOW)


def test_the_window_is_an_hour_in_twelve_equal_buckets() -> None:
    assert len(EDGES) == overview.BUCKETS + 1
    assert EDGES[0] == NOW - timedelta(hours=1) and EDGES[-1] == NOW
    assert {b - a for a, b in itertools.pairwise(EDGES)} == {timedelta(minutes=5)}


def summarize(**rows: object) -> overview.Overview:
    given_rows: dict[str, object] = {
        "counts": [],
        "fires": [],
        "lag_sampled": False,
        "backlog": (0, None, {}),
        "dead_letters": 0,
        "paused": (0, {}),
    }
    given_rows.update(rows)
    return overview.summarize(now=NOW, edges=EDGES, **given_rows)  # type: ignore[arg-type]


def test_nothing_to_show_is_none_not_zero() -> None:
    figures = summarize()
    assert figures.fired == 0 and figures.success_rate is None
    assert figures.lag_p50_s is None and figures.lag_p99_s is None
    assert figures.success_series == (None,) * overview.BUCKETS
    assert figures.oldest_due is None and figures.oldest_due_age_s is None


def test_counts_rates_and_lags_by_bucket() -> None:
    counts = [
        {"bucket": 0, "status": "succeeded", "count": 3},
        {"bucket": 0, "status": "failed", "count": 1},
        {"bucket": 11, "status": "dead", "count": 2},
        {"bucket": 11, "status": "running", "count": 4},
        {"bucket": 11, "status": "skipped", "count": 5},  # never fired: not counted as fired
    ]
    due = EDGES[11] + timedelta(seconds=10)
    fires = [
        {"scheduled_for": due, "started_at": due + timedelta(seconds=s)} for s in (1, 2, 3, 10)
    ] + [{"scheduled_for": EDGES[0], "started_at": EDGES[0] - timedelta(seconds=1)}]
    figures = summarize(
        counts=counts,
        fires=fires,
        backlog=(5, NOW - timedelta(hours=2), {-1: 2, 3: 3}),
        dead_letters=7,
        paused=(2, {-1: 1, 11: 1}),
    )
    assert figures.fired == 10
    assert figures.statuses == {
        "queued": 0,
        "running": 4,
        "succeeded": 3,
        "failed": 1,
        "dead": 2,
        "skipped": 5,
    }
    assert figures.fired_series[0] == 4 and figures.fired_series[11] == 6
    # 3 of the 6 that ended succeeded; the running ones do not count yet.
    assert figures.success_rate == 0.5
    assert figures.success_series[0] == 0.75 and figures.success_series[11] == 0.0
    assert figures.success_series[5] is None
    # A first attempt "before" its due time (clocks apart) counts as no lag.
    assert figures.lag_p50_s == 2.0 and figures.lag_p99_s == 10.0
    assert figures.lag_p99_series[11] == 10.0 and figures.lag_p99_series[0] == 0.0
    # The older backlog is shown in the first bucket, not dropped.
    assert (
        figures.backlog == 5 and figures.backlog_series[0] == 2 and figures.backlog_series[3] == 3
    )
    assert figures.oldest_due_age_s == 7200
    assert figures.dead_letters == 7 and figures.dead_series[11] == 2
    assert figures.paused_tasks == 2 and figures.paused_series[11] == 1


@given(st.integers(min_value=0, max_value=3600 * 10**6 - 1))
def test_every_due_time_in_the_window_has_one_bucket(offset_us: int) -> None:
    when = EDGES[0] + timedelta(microseconds=offset_us)
    bucket = overview._bucket(EDGES, when)
    assert EDGES[bucket] <= when < EDGES[bucket + 1]


def test_a_sparkline_spans_the_drawing_and_names_each_figure() -> None:
    line = sparkline([0.0, 5.0, None, 10.0], "Fired per 5 minutes")
    points = [tuple(map(float, p)) for p in re.findall(r"[ML]([\d.]+) ([\d.]+)", line.path)]
    assert points[0][0] == 0 and points[-1][0] == WIDTH
    assert max(y for _, y in points) <= HEIGHT and min(y for _, y in points) >= 0
    # Larger values are drawn higher (smaller y); a None is a gap (a new M).
    assert points[0][1] > points[1][1] > points[2][1]
    assert line.path.count("M") == 2
    assert line.text == "Fired per 5 minutes, oldest first: 0, 5, none, 10"


def test_a_sparkline_of_nothing_draws_nothing() -> None:
    assert sparkline([None, None], "Lag").path == ""
    assert "none, none" in sparkline([None, None], "Lag").text
