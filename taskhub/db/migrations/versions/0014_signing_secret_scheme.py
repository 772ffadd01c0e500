"""Signing secrets get a scheme: ``taskhub`` (X-Taskhub-Signature) or
``standard-webhooks`` (the webhook-id, webhook-timestamp and webhook-signature headers)

Every existing secret is a ``taskhub`` one (the server default fills the column), and a
check constraint keeps the column to the two names. On SQLite the constraint is added in
batch mode (the table is copied). A downgrade refuses while a standard-webhooks secret is
active: the schema before 0014 would sign with it as X-Taskhub-Signature, a signature
no receiver of it checks. (Revoked ones are kept, and read as ``taskhub`` after
upgrading again: they sign nothing either way.)

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEME_KNOWN = "scheme IN ('taskhub', 'standard-webhooks')"


def upgrade() -> None:
    with op.batch_alter_table("signing_secrets") as batch:
        batch.add_column(
            sa.Column("scheme", sa.String(length=32), nullable=False, server_default="taskhub")
        )
        batch.create_check_constraint("scheme_known", SCHEME_KNOWN)


def downgrade() -> None:
    active = op.get_bind().execute(
        sa.text(
            "SELECT count(*) FROM signing_secrets"
            " WHERE scheme = 'standard-webhooks' AND revoked_at IS NULL"
        )
    )
    count = active.scalar_one()
    if count:
        raise RuntimeError(
            f"{count} standard-webhooks signing secrets are active, which the schema before "
            "0014 would sign with as X-Taskhub-Signature: revoke them (taskhub signing-secret "
            "revoke) before downgrading"
        )
    with op.batch_alter_table("signing_secrets") as batch:
        batch.drop_constraint(op.f("ck_signing_secrets_scheme_known"), type_="check")
        batch.drop_column("scheme")
