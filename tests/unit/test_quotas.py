"""taskhub.quotas' pure parts: rate windows, the schedule limit, limit values, defaults."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskhub.core.errors import ValidationError
from taskhub.core.schedules import Cron, Interval, OneTime, shortest_gap
from taskhub.core.settings import QUOTA_BOUNDS, SettingsError, TenantQuotas, load, tenant_quotas
from taskhub.service import quotas

NOW = datetime(2030, 1, 7, 12, 0, 20, tzinfo=UTC)

instants = st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC))


@given(now=instants, window_s=st.sampled_from([1, 60]))
def test_a_rate_window_holds_its_instant_and_says_when_it_ends(
    now: datetime, window_s: int
) -> None:
    start, retry_after_s = quotas.rate_window(now, window_s)
    assert start % window_s == 0
    assert start <= now.timestamp() < start + window_s
    assert 1 <= retry_after_s <= window_s
    assert retry_after_s == max(1, math.ceil(start + window_s - now.timestamp()))


def test_rate_windows_by_example() -> None:
    assert quotas.rate_window(NOW, 60) == (int(NOW.timestamp()) - 20, 40)
    assert quotas.rate_window(NOW, 1) == (int(NOW.timestamp()), 1)
    assert quotas.rate_window(NOW + timedelta(microseconds=999_999), 1)[1] == 1


@given(interval_s=st.integers(1, 10**6), limit_s=st.integers(1, 86_400))
def test_an_interval_is_refused_exactly_below_the_limit(interval_s: int, limit_s: int) -> None:
    schedule = Interval(interval_s, NOW)
    if interval_s >= limit_s:
        quotas.check_schedule_limit(schedule, limit_s, NOW)
        return
    with pytest.raises(ValidationError) as refused:
        quotas.check_schedule_limit(schedule, limit_s, NOW)
    assert refused.value.field == "schedule.interval_seconds"
    assert f"at least {limit_s}" in refused.value.message
    assert "min_interval_seconds" in refused.value.message


minute_lists = st.lists(st.integers(0, 59), min_size=1, max_size=4, unique=True)
hour_lists = st.lists(st.integers(0, 23), min_size=1, max_size=4, unique=True)


@given(
    minutes=minute_lists,
    hours=st.one_of(st.just(["*"]), hour_lists),
    zone=st.sampled_from(["UTC", "Europe/Berlin", "Australia/Lord_Howe"]),
    limit_s=st.sampled_from([60, 300, 900, 3600, 6 * 3600, 86_400]),
)
def test_a_cron_is_refused_exactly_when_its_shortest_gap_is_below_the_limit(
    minutes: list[int], hours: list[Any], zone: str, limit_s: int
) -> None:
    schedule = Cron(f"{','.join(map(str, minutes))} {','.join(map(str, hours))} * * *", zone)
    day = NOW.replace(hour=0, minute=0, second=0)
    gap = shortest_gap(schedule, day, day + quotas.GAP_HORIZON, below=timedelta(days=1))
    if gap is None or gap >= timedelta(seconds=limit_s):
        quotas.check_schedule_limit(schedule, limit_s, NOW)
        return
    with pytest.raises(ValidationError) as refused:
        quotas.check_schedule_limit(schedule, limit_s, NOW)
    assert refused.value.field == "schedule.cron"
    assert f"min_interval_seconds limit of {limit_s}" in refused.value.message


def test_schedule_limit_by_example() -> None:
    quotas.check_schedule_limit(Cron("* * * * *"), 60, NOW)  # every minute: the default allows
    quotas.check_schedule_limit(OneTime(NOW), 86_400, NOW)
    with pytest.raises(ValidationError, match="every 1 min: more often than"):
        quotas.check_schedule_limit(Cron("* * * * *"), 61, NOW)
    with pytest.raises(ValidationError, match="every 23 h"):  # the spring-forward day
        quotas.check_schedule_limit(Cron("0 0 * * *", "Europe/Berlin"), 86_400, NOW)
    quotas.check_schedule_limit(Cron("0 0 * * *"), 86_400, NOW)


@given(name=st.sampled_from(quotas.LIMIT_NAMES), value=st.integers(-10, 2 * 10**9))
def test_a_limit_value_is_taken_within_its_bounds_only(name: str, value: int) -> None:
    low, high = QUOTA_BOUNDS[name]
    if low <= value <= high:
        assert quotas.parse_limit(name, value) == value
        assert quotas.parse_limit(name, str(value)) == value
        return
    with pytest.raises(ValidationError) as refused:
        quotas.parse_limit(name, value)
    assert refused.value.field == name


@pytest.mark.parametrize("value", [True, 1.5, "1e3", "", " ", "-1", "١٢", [], {}])
def test_odd_limit_values_are_refused(value: Any) -> None:
    with pytest.raises(ValidationError) as refused:
        quotas.parse_limit("max_tasks", value)
    assert refused.value.field == "max_tasks"


def test_default_and_unknown_limits() -> None:
    assert quotas.parse_limit("runs_per_minute", "default") is None
    assert quotas.parse_limit("runs_per_minute", None) is None
    with pytest.raises(ValidationError) as refused:
        quotas.parse_limit("max_taks", 5)
    assert refused.value.field == "max_taks"


def test_settings_give_the_defaults_and_name_a_bad_variable() -> None:
    assert load({}).tenant_quotas == TenantQuotas() == tenant_quotas({})
    assert TenantQuotas() == TenantQuotas(
        max_tasks=10_000, min_interval_seconds=60, runs_per_minute=60, requests_per_second=50
    )
    raised = tenant_quotas(
        {"TASKHUB_TENANT_MAX_TASKS": "50000", "TASKHUB_TENANT_REQUESTS_PER_SECOND": "0"}
    )
    assert (raised.max_tasks, raised.requests_per_second) == (50_000, 0)
    for variable, value in [
        ("TASKHUB_TENANT_MAX_TASKS", "0"),
        ("TASKHUB_TENANT_MIN_INTERVAL_SECONDS", "86401"),
        ("TASKHUB_TENANT_RUNS_PER_MINUTE", "-1"),
        ("TASKHUB_TENANT_REQUESTS_PER_SECOND", "many"),
    ]:
        with pytest.raises(SettingsError, match=variable):
            load({variable: value})


def test_the_limits_are_the_settings_fields() -> None:
    assert quotas.LIMIT_NAMES == (
        "max_tasks",
        "min_interval_seconds",
        "runs_per_minute",
        "requests_per_second",
    )
    assert set(QUOTA_BOUNDS) == set(quotas.LIMIT_NAMES)
