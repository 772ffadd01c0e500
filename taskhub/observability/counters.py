"""What taskhub counts, as pure increments of Prometheus counters and histograms.

The counts are kept in the database (``metric_counters``) and incremented inside the
transaction that does the counted work: a chunk's write-back counts its attempts, a
tick counts its claims. A write-back that is ignored (a repeated callback) counts
nothing, so every count is exactly-once; every process and every API replica reads the
same numbers, on Redis as on SQS, where Celery events do not exist.

This module only computes increments: ``{(family name, labels): amount}``. A histogram
is stored as Prometheus reads it: cumulative ``_bucket`` counts (each observation adds
one to every bucket whose bound it does not exceed, ``+Inf`` included), ``_sum`` and
``_count``. Labels are a JSON object with sorted keys, so equal label sets are equal
strings.
"""

from __future__ import annotations

import bisect
import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from taskhub.observability import metric_names

Key = tuple[str, str]
Increments = dict[Key, float]
Kind = Literal["counter", "histogram", "gauge"]

FIRE_LAG_BUCKETS_S: Final = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
TARGET_LATENCY_BUCKETS_S: Final = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)
FLOW_WAIT_BUCKETS_S: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
TICK_DURATION_BUCKETS_S: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class Family:
    kind: Kind
    help: str


#: Every family kept in ``metric_counters``: what /metrics renders, with its help text.
FAMILIES: Final[Mapping[str, Family]] = {
    metric_names.TICKS: Family("counter", "Ticks run by discovery"),
    metric_names.TICK_DURATION_SECONDS: Family(
        "histogram", "How long one tick took to claim and publish"
    ),
    metric_names.LAST_TICK: Family(
        "gauge", "Unix time at which the last tick ended (stale: beat or discovery is down)"
    ),
    metric_names.OCCURRENCES_CLAIMED: Family(
        "counter", "Occurrences claimed by ticks, each written as one execution"
    ),
    metric_names.OCCURRENCES_WITHDRAWN: Family(
        "counter",
        "Occurrences written down but not yet fired, withdrawn (deleted) in the transaction "
        "of a change to their task, by reason: pause, auto_pause, target_gone (a 410 "
        "Gone paused it), change (of its schedule, window or target), delete",
    ),
    metric_names.NOTIFICATION_TRIES: Family(
        "counter",
        "Tries of grouped notification messages and test messages, by result: sent, "
        "retrying (tried again later), failed (tries used up)",
    ),
    metric_names.EXECUTIONS_REDISPATCHED: Family(
        "counter",
        "Executions published again: retries after their backoff, throttled fires, and "
        "those whose lease ran out or whose holder died",
    ),
    metric_names.ATTEMPTS: Family(
        "counter",
        "Attempts written back, by outcome: success, http_3xx, http_4xx, http_5xx, or the "
        "error kind (timeout, connection, dns, tls, blocked_address, invalid_request)",
    ),
    metric_names.RETRIES_SCHEDULED: Family(
        "counter", "Attempts whose outcome scheduled another attempt after a backoff"
    ),
    metric_names.EXECUTIONS_FINISHED: Family(
        "counter",
        "Executions that ended, by status (succeeded, failed, dead; skipped: never fired, "
        "their task's overlap policy skipped them)",
    ),
    metric_names.FIRE_LAG_SECONDS: Family(
        "histogram", "First attempt's start minus the occurrence's due time"
    ),
    metric_names.TARGET_LATENCY_SECONDS: Family(
        "histogram", "How long each attempt took, from connect to the last byte read"
    ),
    metric_names.FLOW_CONTROL_WAITS: Family(
        "counter",
        "Requests that waited for their host's flow-control budget, by result: sent (fired), "
        "or throttled (no slot in time: not fired, published again later from the database)",
    ),
    metric_names.FLOW_CONTROL_WAIT_SECONDS: Family(
        "histogram", "How long a request waited for its host's flow-control slot"
    ),
    metric_names.HISTORY_REMOVED: Family(
        "counter",
        "Rows removed by history retention, by kind: execution (succeeded or failed), "
        "dead_letter, attempt (of either)",
    ),
}


def labels(**values: str) -> str:
    return json.dumps(values, sort_keys=True, separators=(",", ":")) if values else ""


def parse_labels(text: str) -> dict[str, str]:
    parsed: dict[str, str] = json.loads(text) if text else {}
    return parsed


def _add(increments: Increments, name: str, label_text: str, amount: float) -> None:
    key = (name, label_text)
    increments[key] = increments.get(key, 0.0) + amount


def _count(increments: Increments, counter: str, label_text: str, amount: float) -> None:
    """Adds to a counter family's ``_total`` sample."""
    _add(increments, f"{counter}_total", label_text, amount)


def observe(
    increments: Increments,
    name: str,
    values: Iterable[float],
    buckets: Sequence[float],
    **label_values: str,
) -> None:
    """Observations of a histogram, as Prometheus's cumulative buckets.

    All of a write-back's observations at once: each is placed in its bucket by bisection
    and the buckets are summed once, instead of adding one to every bucket above each
    observation (a thousand-attempt chunk would otherwise cost ~14,000 additions)."""
    per_bucket = [0] * (len(buckets) + 1)
    count, total = 0, 0.0
    for value in values:
        per_bucket[bisect.bisect_left(buckets, value)] += 1
        count += 1
        total += value
    if count == 0:
        return
    cumulative = 0
    for bound_labels, in_bucket in zip(
        _bucket_labels(buckets, label_values), per_bucket, strict=True
    ):
        cumulative += in_bucket
        if cumulative:
            _add(increments, f"{name}_bucket", bound_labels, cumulative)
    _add(increments, f"{name}_sum", labels(**label_values), total)
    _add(increments, f"{name}_count", labels(**label_values), count)


def _bucket_labels(buckets: Sequence[float], label_values: Mapping[str, str]) -> list[str]:
    """Each bucket's label text, ``+Inf`` last (the ``le`` label after the others)."""
    bounds = [repr(float(bound)) for bound in buckets] + ["+Inf"]
    return [labels(**label_values, le=le) for le in bounds]


def attempt_outcome(http_status: int | None, error_kind: str | None) -> str:
    if error_kind is not None:
        return error_kind
    if http_status is None:  # no status and no error: a Celery message its broker accepted
        return "success"
    if 200 <= http_status < 300:
        return "success"
    return f"http_{http_status // 100}xx"


@dataclass(frozen=True)
class AttemptMeasure:
    """What a write-back knows of one applied attempt."""

    attempt: int
    scheduled_for: datetime
    started_at: datetime
    duration_ms: int
    http_status: int | None
    error_kind: str | None
    #: The execution's status after this attempt (queued when a retry was scheduled).
    status: str
    #: The first attempt of its occurrence (not a retry, not a redrive).
    first: bool


def for_attempts(measures: Iterable[AttemptMeasure]) -> Increments:
    increments: Increments = {}
    latencies_s: list[float] = []
    lags_s: list[float] = []
    for m in measures:
        outcome = attempt_outcome(m.http_status, m.error_kind)
        _count(increments, metric_names.ATTEMPTS, _one_label("outcome", outcome), 1)
        latencies_s.append(m.duration_ms / 1000)
        if m.first:
            lags_s.append(max(0.0, (m.started_at - m.scheduled_for).total_seconds()))
        if m.status == "queued":
            _count(increments, metric_names.RETRIES_SCHEDULED, "", 1)
        elif m.status in FINISHED_STATUSES:
            _count_finished(increments, m.status)
    observe(increments, metric_names.TARGET_LATENCY_SECONDS, latencies_s, TARGET_LATENCY_BUCKETS_S)
    observe(increments, metric_names.FIRE_LAG_SECONDS, lags_s, FIRE_LAG_BUCKETS_S)
    return increments


FINISHED_STATUSES: Final = ("succeeded", "failed", "dead", "skipped")


def _count_finished(increments: Increments, status: str) -> None:
    _count(increments, metric_names.EXECUTIONS_FINISHED, _one_label("status", status), 1)


def for_finished(statuses: Iterable[str]) -> Increments:
    """Executions ended with no attempt of their own: tracked Celery tasks whose result
    came, or did not come in time (the attempt, their send, was counted by the
    write-back), and occurrences their task's overlap policy skipped."""
    increments: Increments = {}
    for status in statuses:
        _count_finished(increments, status)
    return increments


@functools.lru_cache(maxsize=256)
def _one_label(name: str, value: str) -> str:
    """``labels(name=value)``, encoded once per pair: a write-back labels every attempt."""
    return labels(**{name: value})


def for_flow_control(
    sent_waits_s: Sequence[float], throttled_waits_s: Sequence[float]
) -> Increments:
    """Waits for a host's flow-control slot, of requests then fired and of throttled ones."""
    increments: Increments = {}
    for result, waits in (("sent", sent_waits_s), ("throttled", throttled_waits_s)):
        if waits:
            _count(increments, metric_names.FLOW_CONTROL_WAITS, labels(result=result), len(waits))
        observe(increments, metric_names.FLOW_CONTROL_WAIT_SECONDS, waits, FLOW_WAIT_BUCKETS_S)
    return increments


def for_notification_try(result: str) -> Increments:
    """One try of a notification message ended: ``sent``, ``retrying`` or ``failed``."""
    increments: Increments = {}
    _count(increments, metric_names.NOTIFICATION_TRIES, _one_label("result", result), 1)
    return increments


def for_claim(occurrences: bool, count: int) -> Increments:
    """One claim batch: new occurrences, or executions published again."""
    if count == 0:
        return {}
    name = metric_names.OCCURRENCES_CLAIMED if occurrences else metric_names.EXECUTIONS_REDISPATCHED
    increments: Increments = {}
    _count(increments, name, "", count)
    return increments


def for_withdrawn(reason: str, count: int) -> Increments:
    """Occurrences a change of their task withdrew before they were fired."""
    if count == 0:
        return {}
    increments: Increments = {}
    _count(increments, metric_names.OCCURRENCES_WITHDRAWN, _one_label("reason", reason), count)
    return increments


def for_tick(duration_s: float) -> Increments:
    increments: Increments = {}
    _count(increments, metric_names.TICKS, "", 1)
    observe(increments, metric_names.TICK_DURATION_SECONDS, [duration_s], TICK_DURATION_BUCKETS_S)
    return increments


def family_of(sample_name: str) -> str:
    """The family a stored sample belongs to (``x_total`` → ``x``, ``x_bucket`` → ``x``)."""
    for suffix in ("_total", "_bucket", "_sum", "_count"):
        if sample_name.endswith(suffix) and sample_name[: -len(suffix)] in FAMILIES:
            return sample_name[: -len(suffix)]
    return sample_name


def for_history_removed(executions: int, dead_letters: int, attempts: int) -> Increments:
    """One prune batch's removals (counted in the batch's own transaction)."""
    increments: Increments = {}
    for kind, count in (
        ("execution", executions),
        ("dead_letter", dead_letters),
        ("attempt", attempts),
    ):
        if count:
            _count(increments, metric_names.HISTORY_REMOVED, _one_label("kind", kind), count)
    return increments
