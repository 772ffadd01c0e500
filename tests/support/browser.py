"""The web console in a real browser: a whole taskhub (API serving the console, worker,
beat) on a scratch PostgreSQL database and the test Redis db, Debian's Chromium driven
by Playwright, and keys made as a user makes them.

Chromium is the system's (``/usr/bin/chromium``, which ``.ci/run`` installs): a browser
download is never possible here, so ``playwright install`` is never run. Screenshots
land in ``docs/images`` so the docs show the pages as they are.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import psycopg
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, ViewportSize, expect
from sqlalchemy.engine import Engine

from taskhub.db import engines, schema
from tests.support.engine import running_stack, start_ready
from tests.support.processes import Stack, free_port, wait_until

ROOT: Final = Path(__file__).resolve().parents[2]
#: Debian's chromium (the package ``chromium``).
CHROMIUM: Final = Path("/usr/bin/chromium")
#: Headless, no sandbox (tests run as root in containers), and nothing that phones home.
CHROMIUM_ARGS: Final = (
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--headless=new",
)
#: The docs' screenshots: one size, so they compare from one run to the next.
VIEWPORT: Final = ViewportSize(width=1280, height=800)
#: A phone's width, for the page that must stay readable there.
PHONE: Final = ViewportSize(width=375, height=800)
SCREENSHOTS: Final = ROOT / "docs" / "images"
#: How long a page may take to show what the test waits for (a loaded 2-core machine).
WAIT_MS: Final = 20_000

expect.set_options(timeout=WAIT_MS)

POSTGRES_URL: Final = os.environ.get(
    "TASKHUB_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
).replace("postgresql+psycopg://", "postgresql://")


@dataclass
class Console:
    """A running taskhub whose API (and so its console) answers at ``url``."""

    url: str
    stack: Stack
    engine: Engine

    def page(self, path: str = "/") -> str:
        """The address of a console page (``path`` under ``/ui``)."""
        return f"{self.url}/ui{path}"

    def new_key(self, tenant: str) -> str:
        """A key for ``tenant``, made as the docs tell a user to: ``taskhub apikey create``."""
        return self.taskhub("apikey", "create", "--tenant", tenant).stdout.strip()

    def taskhub(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The ``taskhub`` command against this installation (its database, its keys)."""
        done = subprocess.run(
            [sys.executable, "-m", "taskhub.cli", *args],
            env=self.stack.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done

    def api(self, key: str) -> httpx.Client:
        """The REST API as ``key``'s holder: for what a test sets up around the console."""
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )


@contextmanager
def scratch_database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database (dropped afterwards) for a whole module."""
    name = f"taskhub_console_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
    try:
        schema.upgrade(url)
        yield url
    finally:
        engines.dispose_after_fork()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def running_console(database_url: str, redis_url: str, log_dir: Path) -> Iterator[Console]:
    """taskhub as ``taskhub dev`` runs it: the API (serving the console), a worker of
    every role and beat, with one-second ticks so that tasks fire within seconds."""
    engine = engines.create_engine(database_url)
    with running_stack(database_url, redis_url, log_dir) as stack:
        port = free_port()
        log = open(log_dir / "api.log", "ab")  # noqa: SIM115 - closed with the process
        stack.processes["api"] = subprocess.Popen(
            [sys.executable, "-m", "taskhub.cli", "api", "--port", str(port)],
            env=stack.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            assert wait_until(lambda: _healthy(url), 60), f"the API did not start\n{stack.logs()}"
            start_ready(stack, "worker", "all")
            start_ready(stack, "beat", "beat")
            yield Console(url, stack, engine)
        finally:
            log.close()
            engine.dispose()


def launch(playwright: Playwright) -> Browser:
    """Debian's Chromium, headless."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))


def new_context(
    browser: Browser, viewport: ViewportSize = VIEWPORT, **extra: Any
) -> BrowserContext:
    """A browser profile of its own (no cookie shared with another test's)."""
    context = browser.new_context(viewport=viewport, locale="en-US", timezone_id="UTC", **extra)
    context.set_default_timeout(WAIT_MS)
    return context


def sign_in(page: Page, console: Console, key: str) -> None:
    """Sign in as a user does: the sign-in page, the key, the button."""
    page.goto(console.page("/sign-in"))
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Sign out").wait_for()


def session_cookies(context: BrowserContext) -> list[Mapping[str, Any]]:
    """The console's session cookie as the browser holds it (to replay it elsewhere)."""
    return [dict(c) for c in context.cookies() if c.get("name") == "taskhub_session"]


def screenshot(page: Page, name: str, full_page: bool = False) -> Path:
    """``docs/images/console-<name>.png``: the page as it is now, at the page's viewport."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"console-{name}.png"
    page.screenshot(path=str(path), full_page=full_page, animations="disabled", caret="hide")
    return path
