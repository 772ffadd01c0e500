"""The SQL of withdrawal: the occurrences of a task written down and not yet fired, taken
back into its schedule when the task changes, and the fire's clearance that races it."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from taskhub.core.limits import MAX_SPREAD_S
from taskhub.core.statuses import ExecutionStatus
from taskhub.db.dialects import one_of
from taskhub.db.models import UTCDateTime, executions, scheduled_tasks
from taskhub.db.task_queries import add_next_occurrences, remove_next_occurrences

T = scheduled_tasks.c
E = executions.c

#: How far before ``now`` an unfired occurrence is looked for (a range of the unique index
#: on (task, scheduled_for), never a task's whole history). A staged occurrence is due at
#: most ``spread_seconds`` (at most an hour) before its fire time; one still unfired an
#: hour past that means no tick ran for an hour, and is left to the tick that publishes it.
UNFIRED_LOOKBACK = timedelta(seconds=MAX_SPREAD_S) + timedelta(hours=1)


def _unfired(now: datetime) -> sa.ColumnElement[bool]:
    """Occurrences of a task's schedule written down and not yet fired (see ``withdrawal``).

    Staged: ``queued``, never published, written before its fire time (a run-now is
    written due at once, ``next_attempt_at = created_at``; a retry, a redrive or a
    throttled fire was published). Published ahead: ``running`` with no attempt, that
    no trigger worker has cleared to fire (``started_at`` unset, see
    :func:`clear_to_fire`), due after ``now`` (so never a run-now, nor an occurrence
    already due when the writer came: that one goes out). Waiting: an occurrence its
    task's overlap policy keeps ``queued`` until the running execution ends.
    """
    return sa.and_(
        E.scheduled_for >= now - UNFIRED_LOOKBACK,
        sa.or_(
            sa.and_(
                E.status == ExecutionStatus.QUEUED.value,
                E.publish_count == 0,
                E.next_attempt_at > E.created_at,
            ),
            sa.and_(
                E.status == ExecutionStatus.RUNNING.value,
                E.attempts == 0,
                E.started_at.is_(None),
                E.scheduled_for > now,
            ),
            # Waiting for its task's running execution to end (overlap ``buffer_one``).
            sa.and_(
                E.status == ExecutionStatus.QUEUED.value,
                E.overlap_state == "waiting",
                E.started_at.is_(None),
            ),
        ),
    )


def unfired_occurrences(
    conn: Connection, task_ids: Sequence[uuid.UUID], now: datetime
) -> dict[uuid.UUID, tuple[datetime, int]]:
    """Per task, its earliest unfired occurrence and how many it has (tasks with none are
    left out): what fires before its ``next_execution_time``."""
    ids = sorted(set(task_ids))
    if not ids:
        return {}
    rows = conn.execute(
        sa.select(E.task_id, sa.func.min(E.scheduled_for), sa.func.count())
        .where(one_of(conn, E.task_id, ids), _unfired(now))
        .group_by(E.task_id)
    )
    return {task_id: (earliest, int(count)) for task_id, earliest, count in rows}


def withdraw_unfired(conn: Connection, task_ids: Sequence[uuid.UUID], now: datetime) -> int:
    """Delete the tasks' unfired occurrences and put them back into their schedule: each
    task's ``occurrence_count`` drops by what it lost and its ``next_execution_time``
    moves back to the earliest of them (its row in ``next_occurrences`` with it). The
    caller holds the task rows' locks and then writes what its change means (a pause,
    a new schedule); a task left active claims them again, unchanged ones at the same
    due times (the deleted rows no longer hold their (task, scheduled_for)).

    Returns how many were withdrawn. A trigger worker holding one of them finds it gone
    when it asks to fire it (:func:`clear_to_fire`), and drops it.
    """
    ids = sorted(set(task_ids))
    if not ids:
        return 0
    withdrawn = conn.execute(
        sa.delete(executions)
        .where(one_of(conn, E.task_id, ids), _unfired(now))
        .returning(E.task_id, E.scheduled_for)
    ).all()
    if not withdrawn:
        return 0
    per_task: dict[uuid.UUID, tuple[datetime, int]] = {}
    for task_id, scheduled_for in withdrawn:
        earliest, count = per_task.get(task_id, (scheduled_for, 0))
        per_task[task_id] = (min(earliest, scheduled_for), count + 1)
    affected = sorted(per_task)
    earliest_param = sa.bindparam("b_earliest", type_=UTCDateTime())
    remove_next_occurrences(conn, affected)
    conn.execute(
        sa.update(scheduled_tasks)
        .where(T.id == sa.bindparam("b_id"))
        .values(
            occurrence_count=T.occurrence_count - sa.bindparam("b_count"),
            next_execution_time=sa.case(
                (T.next_execution_time.is_(None), earliest_param),
                (T.next_execution_time > earliest_param, earliest_param),
                else_=T.next_execution_time,
            ),
        ),
        [
            {"b_id": task_id, "b_earliest": per_task[task_id][0], "b_count": per_task[task_id][1]}
            for task_id in affected
        ],
    )
    add_next_occurrences(conn, affected)
    return len(withdrawn)


def clear_to_fire(
    conn: Connection,
    expected: Mapping[int, int],
    now: datetime,
    carriers: Mapping[int, str],
    holder: str,
) -> set[int]:
    """Which of these executions a trigger worker may fire now; ``expected`` maps each
    execution id to the attempts its request expects written (``attempt - 1``),
    ``carriers`` to the id of the message that carries its request (none: carried by no
    message, see :func:`held_by_carrier`).

    One that is still ``running`` and waiting for exactly that attempt may go. A first
    send is marked (``started_at = now``, which the write-back replaces with the
    attempt's own start) in the same statement, under the row's lock: a writer's
    :func:`withdraw_unfired` then no longer takes it, and one that committed first has
    deleted it, so it is not fired. Exactly one of the two wins.
    """
    ids = sorted(expected)
    if not ids:
        return set()
    running = ExecutionStatus.RUNNING.value
    conn.execute(
        sa.update(executions)
        .where(one_of(conn, E.id, ids), E.status == running, E.started_at.is_(None))
        .values(started_at=now)
    )
    rows = conn.execute(
        sa.select(E.id, E.attempts, E.message_id).where(
            one_of(conn, E.id, ids), E.status == running
        )
    )
    waiting = {
        execution_id: (attempts, message_id)
        for execution_id, attempts, message_id in rows
        if expected[execution_id] == attempts
    }
    return held_by_carrier(conn, waiting, carriers, holder)


def held_by_carrier(
    conn: Connection,
    waiting: Mapping[int, tuple[int, str | None]],
    carriers: Mapping[int, str],
    holder: str,
) -> set[int]:
    """Of executions waiting for the attempt asked about (id → its written attempts and
    the message holding it), those the message carrying each request may fire.

    A lease that ran out while a live message still held its fires (a starved process
    renews late) publishes them again and clears the hold; the second message then
    takes them as it starts, and both would fire. So a request is cleared only for the
    message that holds its execution; one that no message holds (its hold went with
    that publish, or the database could not be reached when the message started) is
    taken here for ``holder`` and its carrier, if still no message has it; one another
    message holds is that message's to fire. A request carried by no message is
    cleared on its attempt alone."""
    cleared: set[int] = set()
    to_take: dict[tuple[str, int], list[int]] = {}
    for execution_id, (attempts, message_id) in waiting.items():
        carrier = carriers.get(execution_id)
        if carrier is None or message_id == carrier:
            cleared.add(execution_id)
        elif message_id is None:
            to_take.setdefault((carrier, attempts), []).append(execution_id)
    for (carrier, attempts), ids in sorted(to_take.items()):
        taken = conn.execute(
            sa.update(executions)
            .where(
                one_of(conn, E.id, ids),
                E.status == ExecutionStatus.RUNNING.value,
                E.attempts == attempts,
                E.message_id.is_(None),
            )
            .values(held_by=holder, message_id=carrier)
            .returning(E.id)
        )
        cleared.update(row[0] for row in taken)
    return cleared
