"""``python -m taskhub.worker.command worker|beat …``: Celery's own ``worker`` and
``beat`` commands on taskhub's app, without the ``celery`` umbrella command.

Why: importing ``celery``'s umbrella command loads every ``celery.commands`` plugin
and the REPL (Flower with Tornado and prometheus_client, click-repl with
prompt_toolkit): ~24 MB of resident memory in every worker process that never uses
them. The commands run here are the very click commands ``celery -A taskhub worker``
and ``celery -A taskhub beat`` run, with the same options; that spelling keeps working
and is what users type by hand. The launch profiles (``roles.py``) use this one.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

COMMANDS = ("worker", "beat")


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in COMMANDS:
        sys.exit(f"usage: python -m taskhub.worker.command {{{'|'.join(COMMANDS)}}} [OPTIONS]")
    # Before anything imports the app: gevent and eventlet must patch first, as the
    # celery command does (`-P gevent` on the command line).
    from celery import maybe_patch_concurrency

    maybe_patch_concurrency(["celery", *args])

    from celery.bin.base import CLIContext
    from celery.bin.beat import beat
    from celery.bin.worker import worker

    from taskhub.worker.celery_app import app

    command = worker if args[0] == "worker" else beat
    command.main(
        args=args[1:],
        prog_name=f"celery {args[0]}",
        obj=CLIContext(app=app, no_color=False, workdir=None, quiet=False),
        # The environment variables the celery command would read for these options.
        auto_envvar_prefix=f"CELERY_{args[0].upper()}",
    )


if __name__ == "__main__":
    main()
