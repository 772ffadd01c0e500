"""The SQL of holds: a trigger message takes its executions for its process before it
fires them, renews their leases while they run, and leaves them to be looked up when
the lease runs out or the process dies."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from taskhub.core.statuses import ExecutionStatus
from taskhub.db.dialects import one_of
from taskhub.db.models import UTCDateTime, executions
from taskhub.db.recordsets import Recordset
from taskhub.db.rows import Hold

E = executions.c


HOLDS = Recordset.of_table(Hold, executions, attempt=sa.Integer(), lease_until=UTCDateTime())


def hold_executions(
    conn: Connection, holds: Sequence[Hold], holder: str, message_id: str
) -> set[int]:
    """A trigger message starts: take its executions for ``holder``, each until its
    ``lease_until`` (counted from now).

    Only an execution still ``running``, waiting for exactly that attempt and not yet
    started by any message is taken: of two messages carrying one fire (a lease that ran
    out before the first one started, a broker's redelivery), one fires. Returns the ids
    taken; the others must not be fired."""
    if not holds:
        return set()
    v = HOLDS.source(conn)
    if v.cte is not None:
        c = v.columns
        rows = conn.execute(
            sa.update(executions)
            .where(
                E.id == c["id"],
                E.status == ExecutionStatus.RUNNING.value,
                E.attempts == c["attempt"] - 1,
                E.held_by.is_(None),
            )
            .values(held_by=holder, message_id=message_id, next_attempt_at=c["lease_until"])
            .returning(E.id),
            HOLDS.params(conn, holds),
        )
        return {row[0] for row in rows}
    # SQLite: the transaction began IMMEDIATE; read, then write what may be taken.
    wanted = {h.id: h for h in holds}
    found = conn.execute(
        sa.select(E.id, E.attempts).where(
            E.id.in_(sorted(wanted)),
            E.status == ExecutionStatus.RUNNING.value,
            E.held_by.is_(None),
        )
    )
    taken = [row.id for row in found if row.attempts == wanted[row.id].attempt - 1]
    if taken:
        conn.execute(
            sa.update(executions)
            .where(E.id == sa.bindparam("b_id"))
            .values(held_by=holder, message_id=message_id, next_attempt_at=sa.bindparam("b_lease")),
            [{"b_id": i, "b_lease": wanted[i].lease_until} for i in taken],
        )
    return set(taken)


def renew_holds(
    conn: Connection, execution_ids: Sequence[int], holder: str, message_id: str, lease: datetime
) -> int:
    """Move the lease of the fires ``message_id`` still holds in ``holder`` to ``lease``
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
            E.next_attempt_at < lease,
        )
        .values(next_attempt_at=lease)
    )
    return int(result.rowcount)


def held_fires_to_look_up(
    conn: Connection, now: datetime, dead_holders: Sequence[str], limit: int, after_id: int = 0
) -> Sequence[RowMapping]:
    """Started fires whose lease ran out, or whose holder is in ``dead_holders``: their
    outcome may be in the result backend under ``message_id``. In pages of ``limit`` by
    id, from after ``after_id``."""
    due: sa.ColumnElement[bool] = E.next_attempt_at <= now
    if dead_holders:
        due = sa.or_(due, E.held_by.in_(dead_holders))
    query = (
        sa.select(E.id, E.attempts, E.message_id)
        .where(
            E.status == ExecutionStatus.RUNNING.value,
            E.message_id.is_not(None),
            E.id > after_id,
            due,
        )
        .order_by(E.id)
        .limit(limit)
    )
    return conn.execute(query).mappings().all()
