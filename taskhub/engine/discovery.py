"""The tick: claim what is due, write it down, then hand it to the broker.

Two kinds of work are claimed, each in short transactions of at most
``claim_batch_size`` rows:

1. due occurrences of tasks: each becomes an execution row (unique on task and
   ``scheduled_for``) and the task's ``next_execution_time`` advances, in the same
   transaction;
2. executions whose retry backoff or publish lease has run out: they are published
   again, with the same idempotency key.

Every execution leaves a claim with a lease (``next_attempt_at``). Publishing happens
after the commit; if the process dies before or while publishing, or the broker loses
the message, or the chord callback never runs, the lease runs out and a later tick
publishes the execution again. The database is the only memory. (A worker that starts
a fire counts its lease again and renews it while it runs; an outcome found in the
result backend is recorded instead of fired again; a dead worker's executions are
published again from its heartbeats: ``holders``.)

Second precision. Beat ticks once a minute, but occurrences are due at any second. The
minute's tick claims what falls due before the next tick (``lookahead_s``) and writes it
down as ``queued`` executions whose ``next_attempt_at`` is the moment to fire them (the
due time plus the task's ``spread_seconds`` offset): the database is the staging area,
nothing waits on the broker (a countdown or ETA past a visibility timeout is
delivered twice). The staging loop (``staging.py``) publishes them at their second; if
no loop runs, the next tick does (late, never lost, never twice).

Publishing lead. What is due within ``publish_lead_s`` (5 s) is published now, each
request carrying ``not_before`` = its fire time; the trigger worker's asyncio client
holds it until then (a few seconds in a worker's hands, far below any visibility
timeout). Claiming, publishing and Celery's delivery thus happen before the due time,
and a 10,000-occurrence minute starts firing at its first millisecond.
"""

from __future__ import annotations

import functools
import gc
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection, Engine, RowMapping

from taskhub.core.messages import TriggerRequest
from taskhub.core.occurrences import ClaimRules, idempotency_key, plan_claim, spread_offset_s
from taskhub.core.settings import Settings
from taskhub.core.signing import Scheme
from taskhub.core.statuses import ExecutionStatus, MisfirePolicy, OverlapPolicy
from taskhub.db import (
    exclusion_queries,
    execution_queries,
    key_queries,
    metric_queries,
    task_queries,
)
from taskhub.db.rows import (
    NewExecution,
    PublishLease,
    TaskAdvance,
    celery_call_of,
    rate_limit_of,
    schedule_of,
    window_of,
)
from taskhub.engine import holders, notification_events, overlap
from taskhub.observability import counters, metric_names

log = logging.getLogger(__name__)

Publish = Callable[[Sequence[TriggerRequest]], None]
_ALLOW = OverlapPolicy.ALLOW.value
Clock = Callable[[], datetime]


@dataclass
class TickReport:
    """What one tick did: logged, and returned as the tick task's result."""

    occurrences_claimed: int = 0
    #: Of those, how many were written down to be published later, at their second.
    occurrences_staged: int = 0
    executions_redispatched: int = 0
    #: Outcomes found in the result backend and recorded instead of fired again.
    outcomes_recovered: int = 0
    published: int = 0
    duration_s: float = 0.0


def lease_until(now: datetime, timeout_s: float, settings: Settings) -> datetime:
    """When a published execution counts as lost: one attempt's timeout plus the lease.

    A worker may start the attempt until ``now + dispatch_lease_s`` (the request's
    ``send_by``), so an attempt that starts in time has ended before the lease does.
    """
    return now + timedelta(seconds=settings.dispatch_lease_s + timeout_s)


class _Requests:
    """What the requests of one claim share, worked out once per claim: its ``now``, the
    end of each fire's grace (``send_by``: ``now`` plus the publish lease,
    ``dispatch_lease_s``) and the active sealed signing secrets of its tenants, by scheme
    (a tenant without any has none)."""

    __slots__ = ("now", "secrets", "send_by", "webhook_secrets")

    def __init__(
        self, conn: Connection, tenants: set[str], now: datetime, settings: Settings
    ) -> None:
        found = key_queries.active_sealed_signing_secrets(conn, tenants)
        taskhub, standard = Scheme.TASKHUB.value, Scheme.STANDARD_WEBHOOKS.value
        self.secrets = {t: tuple(found.get(t, {}).get(taskhub, ())) for t in tenants}
        self.webhook_secrets = {t: tuple(found.get(t, {}).get(standard, ())) for t in tenants}
        self.now = now
        self.send_by = now + timedelta(seconds=settings.dispatch_lease_s)

    def make(
        self,
        target: RowMapping | Mapping[str, Any],
        execution_id: int,
        attempt: int,
        task_id: str,
        scheduled_for: datetime,
        idempotency_key: str,
        fire_at: datetime,
    ) -> TriggerRequest:
        """``target`` holds the task's target columns and tenant; a ``fire_at`` still
        ahead is the request's ``not_before``. Credential headers and signing secrets go
        out still sealed: the broker never carries them in plaintext. A Celery target's
        request carries its Celery task and none of an HTTP call's parts (no URL, method,
        headers, body or secrets)."""
        celery = celery_call_of(target)
        http = celery is None
        return TriggerRequest(
            execution_id=execution_id,
            attempt=attempt,
            task_id=task_id,
            scheduled_for=scheduled_for,
            idempotency_key=idempotency_key,
            url=target["url"] if http else "",
            method=target["method"] if http else "",
            headers=target["headers"] if http else {},  # copied by TriggerRequest
            body=target["body"] if http else None,
            timeout_s=float(target["timeout_seconds"]),
            send_by=self.send_by,
            sealed_headers=target["sealed_headers"] if http else None,
            sealed_signing_secrets=self.secrets[target["tenant"]] if http else (),
            sealed_webhook_secrets=self.webhook_secrets[target["tenant"]] if http else (),
            rate_limit=rate_limit_of(target),
            not_before=fire_at if fire_at > self.now else None,
            tenant=target["tenant"],
            celery=celery,
            overlap=None if target["overlap"] == _ALLOW else target["overlap"],
        )


@dataclass
class Claim:
    """One claim batch: whether more may be waiting, the requests to publish now, and
    what to count (occurrences claimed and staged, or executions published again)."""

    more: bool
    requests: list[TriggerRequest]
    counted: int
    staged: int = 0


def _claim_rules(settings: Settings) -> dict[MisfirePolicy, ClaimRules]:
    """A claim's rules for each misfire policy, made once per claim batch, not per task."""
    return {
        policy: ClaimRules(
            misfire_grace_s=settings.misfire_grace_s,
            max_per_claim=settings.claim_batch_size,
            misfire_policy=policy,
            fire_each_max=settings.misfire_fire_each_max,
        )
        for policy in MisfirePolicy
    }


def claim_occurrences(
    conn: Connection, now: datetime, settings: Settings, lookahead_s: float = 0.0
) -> Claim:
    """One batch of tasks due by ``now + lookahead_s`` → execution rows, advanced tasks,
    and the requests to publish now.

    An occurrence whose fire time (due time plus its spread offset) is still ahead of the
    publishing lead is written as a ``queued`` execution with ``next_attempt_at`` = its
    fire time: staged, published by the staging loop (or a tick) when that comes.
    Returns whether more may be due (a full batch, or a task with more occurrences than
    one claim fires) and the requests to publish now.
    """
    horizon = now + timedelta(seconds=max(lookahead_s, settings.publish_lead_s))
    lead_until = now + timedelta(seconds=settings.publish_lead_s)
    tasks = task_queries.claim_due_tasks(conn, horizon, settings.claim_batch_size)
    new_rows: list[NewExecution] = []
    #: Per new row: its task's row (the id as text), its occurrence, key and fire time.
    planned: list[tuple[RowMapping, datetime, str, datetime]] = []
    advances: list[TaskAdvance] = []
    more = len(tasks) == settings.claim_batch_size
    queued, running = ExecutionStatus.QUEUED.value, ExecutionStatus.RUNNING.value
    rules = _claim_rules(settings)
    # Skips and calendars, read for the tasks that have any (none in the common case).
    excluded = exclusion_queries.exclusions_of(conn, tasks)
    for row in tasks:
        plan = plan_claim(
            schedule_of(row),
            window_of(row),
            rules[MisfirePolicy(row["misfire_policy"])],
            first_due=row["next_execution_time"],
            now=now,
            occurrences_so_far=row["occurrence_count"],
            horizon=horizon,
            exclusions=excluded.get(row["id"]),
        )
        more = more or (plan.next_time is not None and plan.next_time <= horizon)
        task_id: str = row["id"]  # text (task_queries.CLAIM_COLUMNS)
        spread_seconds = row["spread_seconds"]
        timeout_s = row["timeout_seconds"]
        for scheduled_for in plan.fire:
            key = idempotency_key(task_id, scheduled_for)
            fire_at = (
                scheduled_for + timedelta(seconds=spread_offset_s(key, spread_seconds))
                if spread_seconds > 0
                else scheduled_for
            )
            staged = fire_at > lead_until
            new_rows.append(
                NewExecution(
                    task_id,
                    scheduled_for,
                    key,
                    queued if staged else running,
                    fire_at if staged else lease_until(max(now, fire_at), timeout_s, settings),
                    0 if staged else 1,
                )
            )
            planned.append((row, scheduled_for, key, fire_at))
        advances.append(
            TaskAdvance(
                task_id,
                plan.next_time,
                len(plan.fire),
                # Nothing to fire and nothing ahead (e.g. end_at passed): done now. Otherwise
                # the chord callback finishes the task once its last execution has ended.
                plan.next_time is None and not plan.fire,
            )
        )
    notification_events.record_missed(conn, tasks, now, settings.misfire_grace_s)
    inserted = execution_queries.insert_executions(conn, new_rows, now)
    task_queries.advance_tasks(conn, advances, now)
    index_of = {new.idempotency_key: i for i, new in enumerate(new_rows)}
    to_publish: list[tuple[int, int]] = []  # (execution id, index of its new row)
    for ex in inserted:
        i = index_of[ex["idempotency_key"]]
        if new_rows[i].status == running:
            to_publish.append((ex["execution_id"], i))
    make = _Requests(conn, {planned[i][0]["tenant"] for _, i in to_publish}, now, settings).make
    requests: list[TriggerRequest] = []
    for execution_id, i in to_publish:
        row, scheduled_for, key, fire_at = planned[i]
        requests.append(make(row, execution_id, 1, row["id"], scheduled_for, key, fire_at))
    return Claim(more, requests, counted=len(inserted), staged=len(inserted) - len(to_publish))


@dataclass(frozen=True)
class LookedUp:
    """When the result backend was last asked for the outcomes of held fires due to go
    out again, and which holders were dead then: a claim publishes again only those."""

    at: datetime
    dead_holders: Sequence[str]


def claim_publishable(
    conn: Connection,
    now: datetime,
    settings: Settings,
    lookahead_s: float = 0.0,
    looked_up: LookedUp | None = None,
) -> Claim:
    """One batch of executions to publish: staged occurrences whose second has come,
    retries whose backoff ended, throttled fires, and executions whose publish lease ran
    out (message lost, callback lost, worker killed), or whose holder died (``holders``).
    Staged ones are first publications, not counted as published again. Executions
    waiting under an overlap policy whose task has nothing running any more are released
    first, and published in this claim (``overlap``).

    With ``looked_up``, a fire a message started is published again only if its lease
    had run out, or its holder was dead, when its outcome was looked for: one whose lease
    ran out after the lookup waits for the next pass's (its message may have ended, its
    outcome stored, and a publish now would send it twice)."""
    overlap.release(conn, now)
    rows = execution_queries.claim_publishable_executions(
        conn,
        now,
        settings.claim_batch_size,
        lead_until=now + timedelta(seconds=settings.publish_lead_s),
        dead_holders=(
            holders.dead_holders(conn, now, settings)
            if looked_up is None
            else looked_up.dead_holders
        ),
        held_due_by=None if looked_up is None else looked_up.at,
    )
    execution_queries.mark_published(
        conn,
        [
            PublishLease(
                r["execution_id"], lease_until(_fire_at(r, now), r["timeout_seconds"], settings)
            )
            for r in rows
        ],
    )
    more = len(rows) == settings.claim_batch_size
    make = _Requests(conn, {row["tenant"] for row in rows}, now, settings).make
    return Claim(
        more,
        [
            make(
                row,
                row["execution_id"],
                row["attempts"] + 1,
                str(row["task_id"]),
                row["scheduled_for"],
                row["idempotency_key"],
                _fire_at(row, now),
            )
            for row in rows
        ],
        counted=sum(1 for row in rows if row["publish_count"] > 0),
    )


def _fire_at(row: RowMapping, now: datetime) -> datetime:
    """When to fire a claimed execution: a queued one at its ``next_attempt_at`` (a
    staged fire time, the end of a backoff), a running one now (its lease ran out, or its
    holder died before the lease did)."""
    if row["status"] == ExecutionStatus.RUNNING.value:
        return now
    fire_at: datetime = row["next_attempt_at"]
    return max(now, fire_at)


def claim_and_publish(
    engine: Engine,
    settings: Settings,
    publish: Publish,
    clock: Clock,
    lookahead_s: float,
    budget_s: float,
    report: TickReport,
    lookup: holders.Lookup | None = None,
) -> None:
    """Claim and publish until nothing is due (by ``now + lookahead_s`` for occurrences)
    or ``budget_s`` is spent; what is left is still due and the next pass continues.

    Each batch is published after its claim committed, before the next claim, on the
    caller's thread. (A publishing thread that overlapped the broker's time with the next
    claim's database time was measured: no faster in one process, and 6-17 % more CPU
    per occurrence, the two threads contending for the GIL, when discovery processes
    share the cores.) A publish that fails stops the pass and raises: what was claimed
    but not published comes back when its lease runs out, as after a crash.

    With ``lookup`` (the result backend), outcomes of held fires that are due to go out
    again are looked up first, and those found are recorded instead (``holders``); the
    claims then publish again only the held fires that were looked for.
    """
    started = time.monotonic()
    for claim in (claim_occurrences, claim_publishable):
        if claim is claim_publishable and lookup is not None:
            looked_up = _look_up_held(engine, settings, clock(), lookup, report)
            claim = functools.partial(claim_publishable, looked_up=looked_up)
        while time.monotonic() - started < budget_s:
            with _collection_deferred():
                result = _claim_and_publish_batch(
                    engine, settings, claim, publish, clock(), lookahead_s
                )
            if claim is claim_occurrences:
                report.occurrences_claimed += result.counted
                report.occurrences_staged += result.staged
            else:
                report.executions_redispatched += result.counted
            report.published += len(result.requests)
            if not result.more:
                break


def _look_up_held(
    engine: Engine, settings: Settings, now: datetime, lookup: holders.Lookup, report: TickReport
) -> LookedUp:
    with engine.connect() as conn:
        dead = holders.dead_holders(conn, now, settings)
    report.outcomes_recovered += holders.recover_outcomes(
        engine, settings, now, dead, lookup, random.random
    )
    return LookedUp(now, dead)


def _claim_and_publish_batch(
    engine: Engine,
    settings: Settings,
    claim: Callable[[Connection, datetime, Settings, float], Claim],
    publish: Publish,
    now: datetime,
    lookahead_s: float,
) -> Claim:
    with engine.begin() as conn:
        result = claim(conn, now, settings, lookahead_s)
        # Counted in the claim's own transaction: exactly once, like the claim.
        metric_queries.add_to_counters(
            conn, counters.for_claim(claim is claim_occurrences, result.counted)
        )
    if result.requests:
        publish(result.requests)
    return result


@contextmanager
def _collection_deferred() -> Iterator[None]:
    """No garbage collection while one batch is claimed and published.

    A batch allocates ~10 container objects per occurrence (rows, mappings, requests,
    messages) that all live until it is published and then die together, freed by their
    reference counts. Collecting meanwhile only scans each of them, twice (generations 0
    and 1), to free nothing: 5 % of a tick's CPU, measured with ``gc.callbacks``. Once
    the batch is gone, its objects no longer count toward the next collection.

    Process-wide, as the collector is: another thread's collection waits at most for one
    batch. Whoever finds collection enabled turns it back on, so it never stays off.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def run_tick(
    engine: Engine,
    settings: Settings,
    publish: Publish,
    clock: Clock,
    lookup: holders.Lookup | None = None,
) -> TickReport:
    """Claim what falls due before the next tick (staging what is not due yet), publish
    what is due now, within a budget of most of one tick (a huge backlog must not make
    ticks overlap)."""
    started = time.monotonic()
    report = TickReport()
    claim_and_publish(
        engine,
        settings,
        publish,
        clock,
        settings.tick_seconds,
        settings.tick_seconds * 0.8,
        report,
        lookup,
    )
    report.duration_s = time.monotonic() - started
    with engine.begin() as conn:
        metric_queries.add_to_counters(conn, counters.for_tick(report.duration_s))
        metric_queries.set_gauges(conn, {(metric_names.LAST_TICK, ""): clock().timestamp()})
    log.info(
        "tick: %d occurrences claimed (%d staged), %d executions published again, %d published"
        " in %.3f s",
        report.occurrences_claimed,
        report.occurrences_staged,
        report.executions_redispatched,
        report.published,
        report.duration_s,
    )
    return report
