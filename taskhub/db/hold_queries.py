"""The SQL of holds: a trigger message takes its executions for its process before it
sends them, renews their leases while they run, and leaves them to be looked up when
the lease runs out or the process dies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from taskhub.core.statuses import ExecutionStatus
from taskhub.db import json_rows
from taskhub.db.dialects import one_of
from taskhub.db.models import executions

E = executions.c


def hold_executions(
    conn: Connection, holds: Sequence[Mapping[str, Any]], holder: str, message_id: str
) -> set[int]:
    """A trigger message starts: take its executions for ``holder``. Each mapping holds
    ``b_id``, ``b_attempt`` and ``b_lease_until`` (the lease, counted from now).

    Only an execution still ``running``, waiting for exactly that attempt and not yet
    started by any message is taken: of two messages carrying one send (a lease that ran
    out before the first one started, a broker's redelivery), one fires. Returns the ids
    taken; the others must not be fired."""
    if not holds:
        return set()
    if conn.dialect.name == "postgresql":
        rows = conn.execute(
            _HOLD_EXECUTIONS_PG,
            {
                "rows": json_rows.encode(
                    [
                        {"id": h["b_id"], "attempt": h["b_attempt"], "lease": h["b_lease_until"]}
                        for h in holds
                    ]
                ),
                "holder": holder,
                "message_id": message_id,
            },
        )
        return {row[0] for row in rows}
    wanted = {h["b_id"]: h for h in holds}
    found = conn.execute(
        sa.select(E.id, E.attempts).where(
            E.id.in_(sorted(wanted)),
            E.status == ExecutionStatus.RUNNING.value,
            E.held_by.is_(None),
        )
    )
    taken = [row.id for row in found if row.attempts == wanted[row.id]["b_attempt"] - 1]
    if taken:
        conn.execute(
            sa.update(executions)
            .where(E.id == sa.bindparam("b_id"))
            .values(
                held_by=holder, message_id=message_id, next_dispatch_at=sa.bindparam("b_lease")
            ),
            [{"b_id": i, "b_lease": wanted[i]["b_lease_until"]} for i in taken],
        )
    return set(taken)


_HOLD_EXECUTIONS_PG = sa.text(
    """
    UPDATE executions AS e
    SET held_by = :holder, message_id = :message_id, next_dispatch_at = v.lease
    FROM json_to_recordset(CAST(:rows AS json))
         AS v(id bigint, attempt integer, lease timestamptz)
    WHERE e.id = v.id AND e.status = 'running' AND e.attempts = v.attempt - 1
      AND e.held_by IS NULL
    RETURNING e.id
    """
)


def renew_holds(
    conn: Connection, execution_ids: Sequence[int], holder: str, message_id: str, lease: datetime
) -> int:
    """Move the lease of the sends ``message_id`` still holds in ``holder`` to ``lease``
    (never earlier); returns how many."""
    if not execution_ids:
        return 0
    result = conn.execute(
        sa.update(executions)
        .where(
            one_of(conn, E.id, list(execution_ids)),
            E.held_by == holder,
            E.message_id == message_id,
            E.status == ExecutionStatus.RUNNING.value,
            E.next_dispatch_at < lease,
        )
        .values(next_dispatch_at=lease)
    )
    return int(result.rowcount)


def held_sends_to_look_up(
    conn: Connection, now: datetime, dead_holders: Sequence[str], limit: int
) -> Sequence[RowMapping]:
    """Started sends whose lease ran out, or whose holder is in ``dead_holders``: their
    outcome may be in the result backend under ``message_id``."""
    due: sa.ColumnElement[bool] = E.next_dispatch_at <= now
    if dead_holders:
        due = sa.or_(due, E.held_by.in_(dead_holders))
    query = (
        sa.select(E.id, E.attempts, E.message_id)
        .where(E.status == ExecutionStatus.RUNNING.value, E.message_id.is_not(None), due)
        .limit(limit)
    )
    return conn.execute(query).mappings().all()
