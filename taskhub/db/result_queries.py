"""The SQL of the result check: tracked Celery tasks sent and awaiting their result
(``executions.result_due_by`` set, ``running``), read in pages, then locked and ended.

The reads take no lock: the backends are read between them and the short transaction
that ends what came. That transaction locks only rows still awaiting (``SKIP LOCKED`` on
PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serialises writers), so two checkers never
end one execution twice.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from taskhub.core.statuses import ExecutionStatus
from taskhub.db.dialects import one_of
from taskhub.db.models import executions, read_as_json_object, scheduled_tasks
from taskhub.db.recordsets import Recordset
from taskhub.db.rows import ResultEnd

T = scheduled_tasks.c
E = executions.c


def _awaiting() -> sa.ColumnElement[bool]:
    return sa.and_(E.result_due_by.is_not(None), E.status == ExecutionStatus.RUNNING.value)


def awaiting_results(conn: Connection, after_id: int, limit: int) -> Sequence[RowMapping]:
    """The next ``limit`` executions awaiting their result, by id after ``after_id``, with
    their Celery task id (the idempotency key), when the result is due, and their task's
    Celery call (its broker names the result backend)."""
    return (
        conn.execute(
            sa.select(
                E.id,
                E.idempotency_key,
                E.result_due_by,
                E.started_at,
                read_as_json_object(T.celery),
                T.timeout_seconds,
            )
            .join(scheduled_tasks, T.id == E.task_id)
            .where(_awaiting(), E.id > after_id)
            .order_by(E.id)
            .limit(limit)
        )
        .mappings()
        .all()
    )


def lock_awaiting(conn: Connection, execution_ids: Sequence[int]) -> dict[int, RowMapping]:
    """Lock those of ``execution_ids`` still awaiting their result (one another checker
    holds is skipped: it ends it)."""
    if not execution_ids:
        return {}
    rows = conn.execute(
        sa.select(
            E.id,
            E.task_id,
            E.scheduled_for,
            E.started_at,
            E.attempt_offset,
            E.attempts,  # and what a callback reports (``callback_outbox``)
            E.duration_ms,
        )
        .where(one_of(conn, E.id, sorted(execution_ids)), _awaiting())
        .order_by(E.id)
        .with_for_update(of=executions, skip_locked=True)
    ).mappings()
    return {row["id"]: row for row in rows}


RESULT_ENDS = Recordset.of_table(ResultEnd, executions)


def end_awaiting(conn: Connection, rows: Sequence[ResultEnd]) -> None:
    """End locked executions (:func:`lock_awaiting`): no longer awaiting, no lease."""
    if not rows:
        return
    RESULT_ENDS.update_by_id(conn, executions, rows, result_due_by=None, next_attempt_at=None)
