"""History retention as the CLI reaches it: one prune pass by hand."""

from __future__ import annotations

from taskhub.core.clock import utcnow
from taskhub.core.settings import Settings
from taskhub.db import engines
from taskhub.engine.retention import PruneReport, run_pass

__all__ = ["PruneReport", "prune"]


def prune(settings: Settings, *, dry_run: bool = False) -> PruneReport:
    """One pass over the whole backlog (no time budget); ``dry_run``: only count."""
    engine = engines.get_engine(settings.database_url)
    return run_pass(engine, settings.retention, utcnow, dry_run=dry_run)
