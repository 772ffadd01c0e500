"""``taskhub signing-secret``: the keys that sign the requests taskhub sends."""

from __future__ import annotations

import click

from taskhub.cli.common import settings_or_exit
from taskhub.cli.shown_once import Kind, add_commands
from taskhub.core import signing
from taskhub.service import signing_secrets


@click.group("signing-secret")
def signing_secret_group() -> None:
    """Signing secrets: the keys of X-Taskhub-Signature (scheme taskhub) or of the Standard
    Webhooks headers (scheme standard-webhooks), at most two active per scheme and tenant."""


add_commands(
    signing_secret_group,
    Kind(
        create=lambda conn, tenant, now, scheme: signing_secrets.create_secret(
            conn, tenant, now, settings_or_exit(), scheme
        ),
        create_options=(
            click.option(
                "--scheme",
                type=click.Choice(signing.SCHEMES),
                default=signing.Scheme.TASKHUB.value,
                show_default=True,
                help="taskhub: the X-Taskhub-Signature header; standard-webhooks: the "
                "webhook-id, webhook-timestamp and webhook-signature headers "
                "(https://www.standardwebhooks.com).",
            ),
        ),
        listing=signing_secrets.list_secrets,
        revoke=signing_secrets.revoke_secret,
        columns=["id", "tenant", "scheme", "hint", "active", "created_at", "revoked_at"],
        created=lambda stored: (
            f"{stored.scheme} signing secret {stored.hint} (id {stored.id}) for tenant "
            f"{stored.tenant!r}: store it in your receiver now, it is not shown again."
        ),
        revoked=lambda stored: f"signing secret {stored.hint} (id {stored.id})",
        create_help=(
            """Print a new signing secret for TENANT (only the secret, on standard output).

    The secret is shown this once; it is stored sealed.""",
            "The tenant whose requests it signs.",
        ),
        list_help=(
            "Signing secrets, newest first (hints only, never the secrets).",
            "Only this tenant's secrets.",
        ),
        revoke_help=(
            "Revoke a signing secret by its id: attempts sent from now on no longer carry it.",
            "secret_id",
        ),
    ),
)
