"""executions' columns named after what they hold: ``next_attempt_at``, ``publish_count``

``next_dispatch_at`` is the instant the next attempt of an execution is due (the end of
a retry backoff, a staged occurrence's second, the end of a publish lease); the API has
always called it ``next_attempt_at``. ``dispatch_count`` counts how many times the
execution was published to the broker. The partial index on the instant is renamed
with its column.

``ALTER TABLE ... RENAME COLUMN`` works on PostgreSQL and on SQLite (3.25 and later),
and both rewrite the index's predicate with the column, so no table is copied.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RENAMES = (("next_dispatch_at", "next_attempt_at"), ("dispatch_count", "publish_count"))
INDEXES = ("ix_executions_dispatch", "ix_executions_next_attempt_at")


def _rename(columns: Sequence[tuple[str, str]], index: tuple[str, str], column: str) -> None:
    for old, new in columns:
        op.execute(f"ALTER TABLE executions RENAME COLUMN {old} TO {new}")
    old_index, new_index = index
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER INDEX {old_index} RENAME TO {new_index}")
        return
    # SQLite cannot rename an index: the same partial index, under its new name.
    op.execute(f"DROP INDEX {old_index}")
    op.execute(f"CREATE INDEX {new_index} ON executions ({column}) WHERE {column} IS NOT NULL")


def upgrade() -> None:
    _rename(RENAMES, INDEXES, "next_attempt_at")


def downgrade() -> None:
    _rename([(new, old) for old, new in RENAMES], (INDEXES[1], INDEXES[0]), "next_dispatch_at")
