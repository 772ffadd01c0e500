"""The overlap policy at the moment of firing: fire, skip or wait (``core.overlap``).

A request of a task whose policy is not ``allow`` carries it (``TriggerRequest.overlap``,
put there by the claim, which reads the task anyway); an ``allow`` task's requests take
the usual clearance and cost nothing more. At the fire time, the trigger worker's
clearance (``withdrawal.clear_to_fire``) sends the others here, in the same transaction:

1. their tasks' rows are locked (in id order, before any execution row, the order every
   writer of a task takes), so two workers clearing occurrences of one task decide one
   after the other, each seeing what the other wrote;
2. the database says whether another execution of the task runs (it fired under the
   policy and has not ended: a retry's backoff included) and whether one waits;
3. each occurrence is decided, oldest first (a waiting one before any other), each
   seeing the decisions before it: *fire* marks it begun and lets it go; *skip* ends it
   ``skipped`` (counted in ``taskhub_executions_finished_total{status="skipped"}``),
   never fired; *wait* puts it back in the database, ``queued``, with no time to be
   published.

A waiting execution is released by the staging loop or the tick (:func:`release`, in
the transaction of each claim of publishable executions): once nothing of its task runs,
it gets ``next_attempt_at = now``, is published at once and decided again at its
clearance (it fires, nothing running). The running one ends through the write-back, or,
lost with a dead worker or a lost message, through the usual recovery (its lease runs
out or its holder's heartbeats stop, it is published again and ends): nothing waits
forever on a crashed worker. A request already begun (published again after its lease
ran out) is not decided again: it is cleared as any other, if it waits for that attempt.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy.engine import Connection

from taskhub.core.messages import TriggerRequest
from taskhub.core.overlap import Decision, TaskState, after, decide
from taskhub.core.statuses import ExecutionStatus, OverlapPolicy
from taskhub.db import metric_queries, overlap_queries, withdrawal_queries
from taskhub.observability import counters

log = logging.getLogger(__name__)


def clear_guarded(
    conn: Connection,
    requests: Sequence[TriggerRequest],
    now: datetime,
    carriers: Mapping[int, str],
    holder: str,
) -> set[int]:
    """Which of ``requests`` (all of tasks under a policy other than ``allow``) may be
    fired now, the others skipped or set waiting; in the caller's transaction, which
    must not have locked any execution yet. Only what the carrying message holds is
    decided (``withdrawal_queries.held_by_carrier``)."""
    expected = {r.execution_id: r.attempt - 1 for r in requests}
    policies = overlap_queries.lock_policies(conn, {uuid.UUID(r.task_id) for r in requests})
    rows = overlap_queries.executions_asked(conn, expected)
    held = withdrawal_queries.held_by_carrier(
        conn,
        {
            execution_id: (row["attempts"], row["message_id"])
            for execution_id, row in rows.items()
            # ended, waiting, withdrawn, or another attempt: not this request's to fire
            if row["status"] == ExecutionStatus.RUNNING.value
            and expected[execution_id] == row["attempts"]
        },
        carriers,
        holder,
    )
    cleared: set[int] = set()
    undecided: dict[uuid.UUID, list[int]] = {}
    now_allowed: dict[int, int] = {}
    for execution_id, row in rows.items():
        if execution_id not in held:
            continue
        policy = policies.get(row["task_id"])
        if policy is None:
            continue  # deleted meanwhile
        if policy == OverlapPolicy.ALLOW.value:
            now_allowed[execution_id] = row["attempts"]  # changed back to allow
        elif row["started_at"] is not None:
            cleared.add(execution_id)  # begun: sent again after its lease, not decided again
        else:
            undecided.setdefault(row["task_id"], []).append(execution_id)
    cleared |= withdrawal_queries.clear_to_fire(conn, now_allowed, now, carriers, holder)
    if not undecided:
        return cleared
    states = _states(conn, undecided)
    fired: list[int] = []
    skipped: list[int] = []
    waiting: list[int] = []
    for task_id, ids in undecided.items():
        state = states[task_id]
        # A waiting one (released, now cleared) first, then in occurrence order.
        for execution_id in sorted(
            ids,
            key=lambda i: (
                rows[i]["overlap_state"] != overlap_queries.WAITING,
                rows[i]["scheduled_for"],
            ),
        ):
            decision = decide(OverlapPolicy(policies[task_id]), state)
            state = after(state, decision)
            {Decision.FIRE: fired, Decision.SKIP: skipped, Decision.WAIT: waiting}[decision].append(
                execution_id
            )
    overlap_queries.mark_fired(conn, fired, now)
    overlap_queries.mark_skipped(conn, skipped, now)
    overlap_queries.mark_waiting(conn, waiting)
    metric_queries.add_to_counters(
        conn, counters.for_finished([ExecutionStatus.SKIPPED.value] * len(skipped))
    )
    if skipped or waiting:
        log.info(
            "overlap: %d fired, %d skipped (their task's previous execution still runs),"
            " %d waiting for it to end",
            len(fired),
            len(skipped),
            len(waiting),
        )
    return cleared | set(fired)


def _states(conn: Connection, undecided: dict[uuid.UUID, list[int]]) -> dict[uuid.UUID, TaskState]:
    """Each task's state besides the executions being decided."""
    deciding = {i for ids in undecided.values() for i in ids}
    running: set[uuid.UUID] = set()
    waiting: set[uuid.UUID] = set()
    for row in overlap_queries.open_of_tasks(conn, undecided):
        if row["id"] in deciding:
            continue
        if row["overlap_state"] == overlap_queries.FIRED:
            running.add(row["task_id"])
        elif row["overlap_state"] == overlap_queries.WAITING:
            waiting.add(row["task_id"])
    return {t: TaskState(running=t in running, waiting=t in waiting) for t in undecided}


def release(conn: Connection, now: datetime) -> int:
    """Publish now the waiting executions whose task has nothing running any more (their
    clearance decides again); how many."""
    released = overlap_queries.release_waiting(conn, now)
    if released:
        log.info("overlap: %d waiting executions released (what they waited for ended)", released)
    return released
