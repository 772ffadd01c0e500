"""``taskhub stats`` and ``health``: how a running taskhub is doing."""

from __future__ import annotations

import sys
import time

import click
from sqlalchemy.exc import SQLAlchemyError

from taskhub.cli.common import call, print_json, settings_or_exit
from taskhub.core.clock import utcnow
from taskhub.service import database


@click.command("stats")
@click.option("--once", is_flag=True, help="Print one view and exit (for scripts and logs).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object (implies --once).")
@click.option(
    "--interval", default=2.0, show_default=True, type=click.FloatRange(0.2), help="Seconds."
)
@click.option(
    "--window",
    default=300.0,
    show_default=True,
    type=click.FloatRange(1),
    help="Seconds of recent attempts the rates and percentiles cover.",
)
def stats_command(once: bool, as_json: bool, interval: float, window: float) -> None:
    """A live view of the KPIs: backlog, tick, attempts, success, lag, latency, processes."""
    from taskhub.observability import stats

    def view() -> stats.Figures:
        figures: stats.Figures = call(lambda conn: stats.read(conn, utcnow(), window))
        return figures

    if as_json:
        print_json(view().to_json())
        return
    if once:
        click.echo(stats.render(view()))
        return
    try:
        while True:
            figures = view()
            click.clear()
            click.echo(stats.render(figures))
            click.echo("\n(Ctrl-C to quit)")
            time.sleep(interval)
    except KeyboardInterrupt:
        return


@click.command("health")
@click.option(
    "--max-tick-age",
    type=click.FloatRange(1),
    default=None,
    help="Also fail if the last tick ended longer ago than this many seconds.",
)
def health_command(max_tick_age: float | None) -> None:
    """Exit 0 if the database answers (and, with --max-tick-age, ticks run); else 1.

    For container health checks: beat and the discovery worker are healthy together
    only while ticks keep being consumed."""
    settings = settings_or_exit()
    try:
        last_tick = database.last_tick_timestamp(database.engine_for(settings.database_url))
    except SQLAlchemyError as error:
        click.echo(f"unhealthy: the database is unavailable ({error.__class__.__name__})", err=True)
        sys.exit(1)
    if max_tick_age is not None:
        age_s = None if last_tick is None else utcnow().timestamp() - last_tick
        if age_s is None or age_s > max_tick_age:
            shown = "never" if age_s is None else f"{age_s:.0f} s ago"
            click.echo(f"unhealthy: the last tick ended {shown}", err=True)
            sys.exit(1)
    click.echo("healthy")
