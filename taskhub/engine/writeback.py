"""Writing a chunk's outcomes back: the chord callback's domain logic.

One transaction per call. Every write is conditional on the execution still waiting
for exactly this attempt (``status`` open and ``attempts == attempt - 1``), so a
callback that runs twice, or an outcome of a send that was repeated after its lease
ran out, changes nothing the second time. A task whose failures in a row reach its
``auto_pause_after_failures`` is paused in the same transaction, so no tick can claim
another occurrence of it in between, and its occurrences written down but not yet sent
are withdrawn with it (``withdrawal``). So is a task whose target answered ``410 Gone``
(``paused_by`` ``target_gone``): the target says it is gone for good, and Standard
Webhooks asks a sender to stop sending to it.

A Celery target's attempt is the sending of its message: one its broker accepted
(``accepted``) succeeds, with no HTTP status; a tracked one stays ``running`` with no
lease (``next_attempt_at`` NULL), so nothing sends it again, until the result check
ends it. One that could not be sent is retried as any connection error is.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy.engine import Connection, Engine, RowMapping

from taskhub.core.messages import THROTTLED, TriggerOutcome
from taskhub.core.retry_policy import GONE, Decision, RetryPolicy, decide
from taskhub.core.settings import Settings
from taskhub.core.statuses import ExecutionStatus, LastStatus, PausedBy
from taskhub.db import execution_queries, metric_queries, task_queries
from taskhub.db.rows import AttemptRow, AwaitingResult, Deferral, ExecutionResult, TaskResult
from taskhub.engine import callback_outbox, notification_events, withdrawal
from taskhub.observability import counters

log = logging.getLogger(__name__)


class Ended(NamedTuple):
    """One execution that reached a terminal status in this chunk."""

    scheduled_for: datetime
    status: ExecutionStatus
    started_at: datetime
    redriven: bool
    error: str | None
    #: The last attempt's HTTP status (None: no response, or a Celery target).
    http_status: int | None = None


OPEN = frozenset({ExecutionStatus.QUEUED.value, ExecutionStatus.RUNNING.value})


@dataclass
class RecordReport:
    """What one chunk's write-back did with its outcomes: logged, and returned as the
    ``record_chunk`` task's result."""

    applied: int = 0
    throttled: int = 0
    ignored: int = 0
    retries_scheduled: int = 0
    finished: int = 0
    #: Tracked Celery tasks sent: running until their result comes or is overdue.
    awaiting_result: int = 0
    auto_paused: int = 0
    #: Tasks paused because their target answered 410 Gone.
    target_gone: int = 0
    #: Unsent occurrences of the tasks it paused, withdrawn.
    withdrawn: int = 0


class Finished(NamedTuple):
    """What :func:`finish_tasks` did: tasks finished, paused (by failures in a row, by
    a 410), and their unsent occurrences withdrawn."""

    finished: int
    auto_paused: int
    target_gone: int
    withdrawn: int


def _policy(task: RowMapping) -> RetryPolicy:
    return RetryPolicy(task["max_attempts"], task["backoff_seconds"], task["max_backoff_seconds"])


def _decide(
    outcome: TriggerOutcome, row: RowMapping, task: RowMapping, settings: Settings, rand: float
) -> Decision:
    """The execution's status after this attempt. A Celery message its broker accepted
    has no HTTP status: it succeeds, or, tracked, runs on until its result comes."""
    if outcome.accepted:
        awaiting = outcome.result_due_by is not None
        return Decision(ExecutionStatus.RUNNING if awaiting else ExecutionStatus.SUCCEEDED)
    return decide(
        # Counted from the last redrive, which grants a fresh budget.
        attempt=outcome.attempt - row["attempt_offset"],
        http_status=outcome.http_status,
        error_kind=outcome.error_kind,
        retry_after_s=outcome.retry_after_s,
        policy=_policy(task),
        rand=rand,
        retry_after_cap_s=settings.retry_after_cap_s,
    )


def record_outcomes(
    engine: Engine,
    outcomes: Sequence[TriggerOutcome],
    settings: Settings,
    now: datetime,
    rand: Callable[[], float],
) -> RecordReport:
    report = RecordReport()
    with engine.begin() as conn:
        current = execution_queries.lock_executions(conn, (o.execution_id for o in outcomes))
        fresh: list[tuple[TriggerOutcome, RowMapping]] = []
        deferred: list[Deferral] = []
        throttled_waits_s: list[float] = []
        for outcome in outcomes:
            row = current.get(outcome.execution_id)
            if row is None or row["status"] not in OPEN or row["attempts"] != outcome.attempt - 1:
                report.ignored += 1
                continue
            if outcome.error_kind == THROTTLED:
                # Not sent, so not an attempt: back to the database to be sent again after
                # the wait the host's budget asked for, with the same attempt number. Only
                # from "running", so a repeated callback defers (and counts) nothing twice.
                current.pop(outcome.execution_id)
                if row["status"] != ExecutionStatus.RUNNING.value:
                    report.ignored += 1
                    continue
                deferred.append(
                    Deferral(
                        row["id"], now + timedelta(seconds=max(outcome.retry_after_s or 1.0, 0.0))
                    )
                )
                throttled_waits_s.append(outcome.flow_wait_s)
                report.throttled += 1
                continue
            fresh.append((outcome, row))
            # Two outcomes of one attempt in one chunk: the first one wins.
            current.pop(outcome.execution_id)
        tasks = task_queries.lock_tasks(conn, (row["task_id"] for _, row in fresh))

        execution_updates: list[ExecutionResult] = []
        attempt_rows: list[AttemptRow] = []
        awaiting: list[AwaitingResult] = []  # tracked Celery tasks sent: their result decides
        measures: list[counters.AttemptMeasure] = []
        deliveries: list[callback_outbox.Delivery] = []  # the callbacks of those that ended
        # Per task: (scheduled_for, status, started_at, redriven) of each execution that ended.
        ended: dict[uuid.UUID, list[Ended]] = {}
        for outcome, row in fresh:
            task = tasks.get(row["task_id"])
            if task is None:  # deleted meanwhile; its executions went with it
                report.ignored += 1
                continue
            decision = _decide(outcome, row, task, settings, rand())
            terminal = decision.status.is_terminal
            waits = decision.status is ExecutionStatus.RUNNING
            execution_updates.append(
                ExecutionResult(
                    id=row["id"],
                    status=decision.status.value,
                    attempts=outcome.attempt,
                    # Awaiting its result: no lease, so no one sends it again.
                    next_attempt_at=None
                    if terminal or waits
                    else now + timedelta(seconds=decision.retry_in_s or 0.0),
                    http_status=outcome.http_status,
                    duration_ms=outcome.duration_ms,
                    error=outcome.error,
                    response_excerpt=outcome.response_excerpt,
                    # The first attempt's own start (the fire's clearance marked the
                    # row when it let it go); a later attempt keeps the first's.
                    started_at=outcome.started_at
                    if row["attempts"] == 0
                    else row["started_at"] or outcome.started_at,
                    finished_at=now if terminal else None,
                )
            )
            attempt_rows.append(
                AttemptRow(
                    row["id"],
                    outcome.attempt,
                    outcome.started_at,
                    outcome.duration_ms,
                    outcome.http_status,
                    outcome.error_kind,
                    outcome.error,
                )
            )
            measures.append(
                counters.AttemptMeasure(
                    attempt=outcome.attempt,
                    scheduled_for=row["scheduled_for"],
                    started_at=outcome.started_at,
                    duration_ms=outcome.duration_ms,
                    http_status=outcome.http_status,
                    error_kind=outcome.error_kind,
                    status=decision.status.value,
                    first=outcome.attempt == 1,
                )
            )
            _log_attempt(row, outcome, decision.status)
            report.applied += 1
            if terminal:
                ended.setdefault(row["task_id"], []).append(
                    Ended(
                        row["scheduled_for"],
                        decision.status,
                        outcome.started_at,
                        row["attempt_offset"] > 0,
                        outcome.error
                        or (None if outcome.http_status is None else f"HTTP {outcome.http_status}"),
                        outcome.http_status,
                    )
                )
                delivery = callback_outbox.of_outcome(task, row, decision.status.value, outcome)
                if delivery is not None:
                    deliveries.append(delivery)
            elif outcome.result_due_by is not None:  # sent, tracked: its result decides
                awaiting.append(AwaitingResult(row["id"], outcome.result_due_by))
                report.awaiting_result += 1
            else:
                report.retries_scheduled += 1
        execution_queries.defer_executions(conn, deferred)
        execution_queries.update_execution_results(conn, execution_updates)
        execution_queries.release_to_result_check(conn, awaiting)
        execution_queries.insert_attempts(conn, attempt_rows)
        callback_outbox.write(conn, deliveries, now)
        done = finish_tasks(conn, tasks, ended, now)
        notification_events.record_late(conn, tasks, fresh, now)
        report.finished, report.auto_paused = done.finished, done.auto_paused
        report.target_gone, report.withdrawn = done.target_gone, done.withdrawn
        # In the same transaction: an ignored (repeated) outcome is never counted.
        metric_queries.add_to_counters(conn, counters.for_attempts(measures))
        metric_queries.add_to_counters(
            conn,
            counters.for_flow_control(
                [o.flow_wait_s for o, _ in fresh if o.flow_wait_s > 0], throttled_waits_s
            ),
        )
    return report


def finish_tasks(
    conn: Connection,
    tasks: dict[uuid.UUID, RowMapping],
    ended: dict[uuid.UUID, list[Ended]],
    now: datetime,
) -> Finished:
    """Fold the executions that ended into their (locked) tasks: last status, failures in
    a row, execution count, finished, and the pauses (a 410 Gone, the auto-pause) with
    their withdrawal. The write-back and the result check (``celery_results``) both end
    executions through here."""
    task_updates = _task_updates(tasks, ended, now)
    still_open = task_queries.tasks_with_open_executions(
        conn, (u.id for u in task_updates if u.is_finished)
    )
    paused: list[uuid.UUID] = []
    gone: list[uuid.UUID] = []
    finished = 0
    for i, update in enumerate(task_updates):
        if update.is_finished and update.id in still_open:
            update = task_updates[i] = update._replace(is_finished=False)
        finished += int(update.is_finished)
        # A 410 says more than a count of failures: it wins when both apply.
        pause = _target_gone(update, tasks[update.id], ended, now)
        if pause is not None:
            task_updates[i] = pause
            gone.append(update.id)
            continue
        pause = _auto_pause(update, tasks[update.id], ended, now)
        if pause is not None:
            task_updates[i] = pause
            paused.append(update.id)
    task_queries.update_task_results(conn, task_updates)
    withdrawn = withdrawal.withdraw(conn, paused, now, withdrawal.AUTO_PAUSE)
    notification_events.record_ended(conn, tasks, ended, paused, now)
    withdrawn += withdrawal.withdraw(conn, gone, now, withdrawal.TARGET_GONE)
    return Finished(finished, len(paused), len(gone), withdrawn)


def _log_attempt(row: RowMapping, outcome: TriggerOutcome, status: ExecutionStatus) -> None:
    """One line per written-back attempt, with the ids a log search needs; successes (and
    tracked Celery sends, still running) at DEBUG (thousands a minute), retries at INFO,
    failures and dead letters at WARNING."""
    level = (
        logging.DEBUG
        if status in (ExecutionStatus.SUCCEEDED, ExecutionStatus.RUNNING)
        else logging.INFO
        if status is ExecutionStatus.QUEUED
        else logging.WARNING
    )
    if not log.isEnabledFor(level):  # a success per row at DEBUG: skip building it
        return
    scheduled_for = row["scheduled_for"].isoformat()
    log.log(
        level,
        "execution %s of task %s due %s: attempt %d %s (%s)",
        row["id"],
        row["task_id"],
        scheduled_for,
        outcome.attempt,
        status.value,
        _described(outcome),
        extra={
            "task_id": str(row["task_id"]),
            "execution_id": row["id"],
            "scheduled_for": scheduled_for,
            "attempt": outcome.attempt,
            "status": status.value,
            "http_status": outcome.http_status,
        },
    )


def _described(outcome: TriggerOutcome) -> str:
    if outcome.error:
        return outcome.error
    if outcome.accepted:
        return "the Celery broker accepted the message"
    return f"HTTP {outcome.http_status}"


def _task_updates(
    tasks: dict[uuid.UUID, RowMapping],
    ended: dict[uuid.UUID, list[Ended]],
    now: datetime,
) -> list[TaskResult]:
    """Fold each task's newly ended executions, in occurrence order, into its counters."""
    updates = []
    for task_id, results in ended.items():
        task = tasks[task_id]
        failures = task["consecutive_failures"]
        last_status = task["last_status"]
        last_time = task["last_execution_time"]
        for _scheduled_for, status, started_at, _redriven, _error, _http in sorted(
            results, key=lambda r: r.scheduled_for
        ):
            succeeded = status is ExecutionStatus.SUCCEEDED
            failures = 0 if succeeded else failures + 1
            last_status = LastStatus(status.value).value  # succeeded, failed or dead
            last_time = started_at if last_time is None else max(last_time, started_at)
        # No occurrence left: the task finishes once none of its executions is open.
        exhausted = task["next_execution_time"] is None
        updates.append(
            TaskResult(
                id=task_id,
                last_execution_time=last_time,
                last_status=last_status,
                # A redriven execution was counted when it first ended.
                execution_count=task["execution_count"]
                + sum(1 for result in results if not result.redriven),
                consecutive_failures=failures,
                is_finished=task["is_finished"] or exhausted,
                is_active=task["is_active"],
                paused_by=task["paused_by"],
                paused_reason=task["paused_reason"],
                paused_at=task["paused_at"],
                updated_at=now,
            )
        )
    return updates


def _auto_pause(
    update: TaskResult, task: RowMapping, ended: dict[uuid.UUID, list[Ended]], now: datetime
) -> TaskResult | None:
    """The task paused in this same write-back if its failures in a row reached its
    ``auto_pause_after_failures``: no further occurrence is claimed until a user resumes
    it. A task already paused (by anyone) or finished is left as it is (None)."""
    limit = task["auto_pause_after_failures"]
    failures = update.consecutive_failures
    if limit is None or failures < limit or not task["is_active"] or update.is_finished:
        return None
    count, reached = _limit_reached(task["consecutive_failures"], ended[task["id"]], limit)
    return update._replace(
        is_active=False,
        paused_by=PausedBy.AUTO_PAUSE.value,
        paused_reason=f"auto-paused after {count} consecutive failure{'' if count == 1 else 's'}"
        f" (auto_pause_after_failures: {limit}; last: {reached.error or reached.status.value})",
        paused_at=now,
    )


def _target_gone(
    update: TaskResult, task: RowMapping, ended: dict[uuid.UUID, list[Ended]], now: datetime
) -> TaskResult | None:
    """The task paused in this same write-back if an execution of it ended on a ``410
    Gone``: the target says it is gone for good, so no further occurrence is claimed
    until a user resumes it. As with the auto-pause, a task already paused (by anyone)
    or finished is left as it is (None). Logged at WARNING, with the task's id."""
    if not task["is_active"] or update.is_finished:
        return None
    gone = [e for e in ended[task["id"]] if e.http_status == GONE]
    if not gone:
        return None
    first = min(gone, key=lambda e: e.scheduled_for)
    due = first.scheduled_for.isoformat()
    log.warning(
        "task %s paused: its target answered 410 Gone (the occurrence due %s)",
        task["id"],
        due,
        extra={"task_id": str(task["id"]), "scheduled_for": due, "paused_by": "target_gone"},
    )
    return update._replace(
        is_active=False,
        paused_by=PausedBy.TARGET_GONE.value,
        paused_reason=f"paused: the target answered 410 Gone (the occurrence due {due})",
        paused_at=now,
    )


def _limit_reached(before: int, results: list[Ended], limit: int) -> tuple[int, Ended]:
    """The failure that made the task's final run of failures reach ``limit``, and the
    count there (``before`` failures in a row came before these results). Failures
    after it in the same chunk were sent before the pause: they count in
    ``consecutive_failures``, not in the reason."""
    failures = before
    reached: tuple[int, Ended] | None = None
    for result in sorted(results, key=lambda r: r.scheduled_for):
        if result.status is ExecutionStatus.SUCCEEDED:
            failures, reached = 0, None
            continue
        failures += 1
        if reached is None and failures >= limit:
            reached = (failures, result)
    if reached is None:  # the caller checked that the final count reaches the limit
        raise ValueError("the failures do not reach the limit")
    return reached
