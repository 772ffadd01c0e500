"""The create, list and revoke commands that ``taskhub apikey`` and ``taskhub
signing-secret`` share: a secret printed once, alone on standard output, with a notice
on standard error; a listing that never shows it; a revoke that may be repeated."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

import click
from sqlalchemy.engine import Connection

from taskhub.cli.common import call, json_option, print_json, table
from taskhub.core.clock import utcnow


class Stored(Protocol):
    """What both kinds keep that may be shown: when it was revoked, its public fields."""

    @property
    def revoked_at(self) -> datetime | None: ...

    def to_dict(self) -> dict[str, Any]: ...


S = TypeVar("S", bound=Stored)


@dataclass(frozen=True)
class Kind(Generic[S]):
    """One kind of secret: its service functions, its columns and its words."""

    #: ``(conn, tenant, now, **options)``: the secret, shown this once, and what is kept
    #: of it; ``options`` are those of :attr:`create_options`, by name.
    create: Callable[..., tuple[str, S]]
    #: ``(conn, tenant or None)``: newest first.
    listing: Callable[[Connection, str | None], list[S]]
    #: ``(conn, identifier, now)``: idempotent; what is not there is not found.
    revoke: Callable[[Connection, str, datetime], S]
    columns: list[str]
    #: The notice on standard error after the new secret.
    created: Callable[[S], str]
    #: What follows ``revoked`` (or ``already revoked``).
    revoked: Callable[[S], str]
    #: The help of create, and of its --tenant.
    create_help: tuple[str, str]
    #: The help of list, and of its --tenant.
    list_help: tuple[str, str]
    #: The help of revoke, and the name of its argument.
    revoke_help: tuple[str, str]
    #: Options of create beyond ``--tenant`` (click decorators), passed on by name.
    create_options: tuple[Callable[[Callable[..., None]], Callable[..., None]], ...] = ()


def add_commands(group: click.Group, kind: Kind[S]) -> None:
    """``create``, ``list`` and ``revoke`` on ``group``, for ``kind``."""

    def create(tenant: str, **options: Any) -> None:
        secret, stored = call(kind.create, tenant, utcnow(), **options)
        click.echo(secret)
        click.echo(kind.created(stored), err=True)

    for option in reversed(kind.create_options):
        create = option(create)
    create = click.option("--tenant", required=True, help=kind.create_help[1])(create)
    group.command("create", help=kind.create_help[0])(create)

    @group.command("list", help=kind.list_help[0])
    @click.option("--tenant", help=kind.list_help[1])
    @json_option
    def listing(tenant: str | None, as_json: bool) -> None:
        found = [stored.to_dict() for stored in call(kind.listing, tenant)]
        if as_json:
            print_json({"items": found})
            return
        table(found, kind.columns)

    @group.command("revoke", help=kind.revoke_help[0])
    @click.argument("identifier", metavar=kind.revoke_help[1].upper())
    def revoke(identifier: str) -> None:
        moment = utcnow()
        stored = call(kind.revoke, identifier, moment)
        already = "" if stored.revoked_at == moment else "already "
        click.echo(f"{already}revoked {kind.revoked(stored)}")
