"""The web console in real Chromium, over a whole running taskhub (API, worker, beat on
PostgreSQL and Redis) firing at a local target.

Controls are found as people and screen readers find them: by role, label and
accessible name, the issue's "words on the page" (issue 17). The pages' screenshots in
``docs/images`` are taken here, so they show the console as it is. One stack and one
browser serve the module (on a database of its own, so names need not be unique); each
test signs in a browser profile of its own, and a test that needs a tenant to itself
makes one.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Dialog,
    Locator,
    Page,
    expect,
    sync_playwright,
)
from standardwebhooks import Webhook

from tests.conftest import service_missing
from tests.support.browser import (
    CHROMIUM,
    PHONE,
    Console,
    launch,
    new_context,
    running_console,
    scratch_database,
    screenshot,
    session_cookies,
    sign_in,
)
from tests.support.processes import wait_until
from tests.support.target import HTML_ANSWER, Target, running_target

pytestmark = pytest.mark.slow

#: A task that never fires by itself in a test's lifetime (Run now fires it).
NEVER = {"cron": "0 0 1 1 *", "timezone": "UTC"}
XSS_NAME = "<img src=x onerror=alert(1)>"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


# --- the module's stack, browser and tenant -------------------------------------------


@pytest.fixture(scope="module")
def console(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    if not CHROMIUM.exists():
        service_missing("Chromium", FileNotFoundError(f"{CHROMIUM}: apt-get install chromium"))
    with ExitStack() as resources:
        try:
            url = resources.enter_context(scratch_database())
        except psycopg.OperationalError as error:
            service_missing("PostgreSQL", error)
        logs = tmp_path_factory.mktemp("console")
        yield resources.enter_context(running_console(url, redis_url, logs))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def hook() -> Iterator[Target]:
    """The local target every task of the module fires at."""
    with running_target() as target:
        yield target


@pytest.fixture(scope="module")
def acme_key(console: Console) -> str:
    """acme's key; its operator lets it schedule every few seconds (the default floor is
    a minute), so that a task made in the form fires while the test watches."""
    console.taskhub("tenant", "limits", "set", "acme", "--min-interval-seconds", "1")
    return console.new_key("acme")


@pytest.fixture(scope="module")
def acme(console: Console, acme_key: str) -> Iterator[httpx.Client]:
    """The REST API as tenant acme: what a test sets up before it looks in the console."""
    with console.api(acme_key) as client:
        yield client


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = new_context(browser)
    yield context
    context.close()


@pytest.fixture
def dialogs(context: BrowserContext) -> list[str]:
    """Every alert/confirm/prompt any page of the test opened (none should)."""
    opened: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        opened.append(dialog.message)
        dialog.dismiss()

    def record(page: Page) -> None:
        page.on("dialog", dismiss)

    context.on("page", record)
    return opened


@pytest.fixture
def page(context: BrowserContext, dialogs: list[str], console: Console, acme_key: str) -> Page:
    """A page signed in as acme."""
    page = context.new_page()
    sign_in(page, console, acme_key)
    return page


# --- helpers ----------------------------------------------------------------------------


def create_task(api: httpx.Client, name: str, url: str, **fields: Any) -> dict[str, Any]:
    body = {"name": name, "schedule": NEVER, "target": {"url": url, "timeout_seconds": 5}}
    body.update(fields)
    response = api.post("/v1/tasks", json=body)
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    return task


def executions_of(api: httpx.Client, task_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/v1/tasks/{task_id}/executions")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def wait_for_status(api: httpx.Client, task_id: str, status: str) -> None:
    assert wait_until(
        lambda: any(e["status"] == status for e in executions_of(api, task_id)), 60
    ), executions_of(api, task_id)


def requests_to(hook: Target, path: str) -> int:
    return sum(r.path == path for r in hook.snapshot())


def until_shown(page: Page, what: Callable[[], Locator], timeout_s: float = 45) -> None:
    """Reload ``page`` until ``what()`` is visible: what the worker did shows on the
    next load (or sooner, where the page refreshes itself)."""
    deadline = time.monotonic() + timeout_s
    while what().count() == 0 or not what().first.is_visible():
        if time.monotonic() > deadline:
            break
        time.sleep(1)
        page.reload()
    expect(what().first).to_be_visible(timeout=1000)


def notice(page: Page, text: str | re.Pattern[str]) -> None:
    """What a change's redirect says it did (a status message)."""
    expect(page.get_by_role("status").filter(has_text=text)).to_be_visible()


def at(console: Console, path: str) -> re.Pattern[str]:
    """The address of a console page, with or without a query (a notice, filters)."""
    return re.compile(re.escape(console.page(path)) + r"(\?.*)?$")


def nav(page: Page, name: str) -> Locator:
    """A link of the console's navigation (a page may link "Tasks" elsewhere too)."""
    return page.get_by_role("navigation", name="Console").get_by_role("link", name=name, exact=True)


def choose_schedule(page: Page, kind: str) -> None:
    """The "Schedule" choice: a select or radio buttons, whichever the form has."""
    select = page.get_by_role("combobox", name="Schedule", exact=True)
    if select.count():
        select.select_option(label=kind)
    else:
        page.get_by_role("radio", name=kind, exact=True).check()


def textbox(page: Page, label: str) -> Locator:
    """The text field labelled ``label`` (not the schedule choice of the same word)."""
    return page.get_by_role("textbox", name=label, exact=True)


def task_id_of(page: Page) -> str:
    match = re.search(rf"/ui/tasks/({UUID})(\?.*)?$", page.url)
    assert match, page.url
    return match.group(1)


def post_without_token(page: Page, button: Locator) -> int:
    """What the server answers ``button``'s form posted with the session's cookie but
    without its anti-forgery token (as another site's form would be)."""
    form: dict[str, str | float | bool] = button.evaluate(
        """button => Object.fromEntries(
            [...new FormData(button.form)].filter(([name]) => name !== "csrf_token"))"""
    )
    action: str = button.evaluate("button => button.form.action")
    return page.request.post(action, form=form, max_redirects=0).status


def everything_shown(page: Page) -> str:
    """The page's text and the values of its fields (a secret may sit in either)."""
    shown: str = page.evaluate(
        """() => [document.body.innerText,
                  ...[...document.querySelectorAll("input, textarea")].map(e => e.value)
                 ].join("\\n")"""
    )
    return shown


# --- signing in and out -------------------------------------------------------------------


def test_sign_in_refuses_a_wrong_key_and_exchanges_a_right_one_for_a_session(
    context: BrowserContext, console: Console, acme_key: str
) -> None:
    page = context.new_page()
    page.goto(console.page("/"))
    expect(page).to_have_url(re.compile(r"/ui/sign-in"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    screenshot(page, "sign-in")

    page.get_by_label("API key").fill("th_not_a_real_key_0123456789")
    page.get_by_role("button", name="Sign in").click()
    key_field = page.get_by_label("API key")
    expect(key_field).to_have_attribute("aria-invalid", "true")
    expect(key_field).to_have_accessible_description(re.compile("not valid"))
    assert not session_cookies(context)

    key_field.fill(acme_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(at(console, "/"))
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.get_by_text("acme", exact=True)).to_be_visible()
    (cookie,) = session_cookies(context)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    assert acme_key not in cookie["value"] and acme_key not in page.content()
    for name in ("Overview", "Tasks", "Dead letters", "Signing secrets"):
        expect(nav(page, name)).to_be_visible()


def test_sign_out_ends_the_session_on_the_server(
    browser: Browser, context: BrowserContext, page: Page, console: Console
) -> None:
    cookies = session_cookies(context)
    assert cookies
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/ui/sign-in"))
    notice(page, "Signed out.")
    assert not session_cookies(context)
    # The old cookie, replayed in a profile of its own, opens nothing.
    replay = new_context(browser)
    try:
        replay.add_cookies(cookies)  # type: ignore[arg-type]
        other = replay.new_page()
        other.goto(console.page("/"))
        expect(other).to_have_url(re.compile(r"/ui/sign-in"))
        expect(other.get_by_role("button", name="Sign out")).to_have_count(0)
    finally:
        replay.close()


def test_a_revoked_key_ends_its_sessions(context: BrowserContext, console: Console) -> None:
    key = console.new_key("revoked")
    page = context.new_page()
    sign_in(page, console, key)
    (listed,) = json.loads(
        console.taskhub("apikey", "list", "--tenant", "revoked", "--json").stdout
    )["items"]
    console.taskhub("apikey", "revoke", str(listed["id"]))
    page.reload()
    expect(page).to_have_url(re.compile(r"/ui/sign-in"))


def test_a_sign_out_without_the_csrf_token_is_refused_and_ends_nothing(
    page: Page, console: Console
) -> None:
    # The browser sends the session cookie; the form lacks the token, or forges one.
    forms: list[dict[str, str | float | bool]] = [{}, {"csrf_token": "forged-token"}]
    for form in forms:
        refused = page.request.post(console.page("/sign-out"), form=form, max_redirects=0)
        assert refused.status == 403, (form, refused.status, refused.text()[:300])
    page.reload()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page).not_to_have_url(re.compile(r"/ui/sign-in"))


# --- tasks: create, fire, act -----------------------------------------------------------


def test_the_form_refuses_a_bad_cron_beside_its_field_then_takes_it_corrected(
    page: Page, console: Console, acme: httpx.Client, hook: Target
) -> None:
    name = "weekday-report"
    nav(page, "Tasks").click()
    page.get_by_role("link", name="New task").click()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("URL", exact=True).fill(hook.url("/report"))
    page.get_by_label("Method", exact=True).select_option("POST")
    page.get_by_label("Body", exact=True).fill('{"report": "weekday"}')
    choose_schedule(page, "Cron")
    textbox(page, "Cron").fill("0 25 * * MON-FRI")
    page.get_by_role("button", name="Create").click()

    cron = textbox(page, "Cron")
    expect(cron).to_have_attribute("aria-invalid", "true")
    expect(cron).to_have_accessible_description(re.compile(r"\S"))
    error = page.locator(f"#{cron.get_attribute('aria-describedby')}")
    expect(error).to_be_visible()
    # Beside its field (right under or next to it), not only at the top of the page.
    field_box, error_box = cron.bounding_box(), error.bounding_box()
    assert field_box and error_box and abs(error_box["y"] - field_box["y"]) < 120
    expect(page.get_by_label("Name", exact=True)).to_have_value(name)  # nothing was lost
    assert [t["name"] for t in acme.get("/v1/tasks").json()["items"]].count(name) == 0
    cron.scroll_into_view_if_needed()
    screenshot(page, "task-new-error")

    cron.fill("0 9 * * MON-FRI")
    page.get_by_label("Time zone", exact=True).fill("Asia/Taipei")
    page.get_by_role("button", name="Create").click()
    expect(page).to_have_url(re.compile(rf"/ui/tasks/{UUID}(\?.*)?$"))
    notice(page, "Task created.")
    expect(page.get_by_role("heading", name=name)).to_be_visible()
    expect(page.get_by_text("At 09:00, Monday through Friday (Asia/Taipei)").first).to_be_visible()
    stored = acme.get(f"/v1/tasks/{task_id_of(page)}").json()
    assert stored["schedule"] == {"cron": "0 9 * * MON-FRI", "timezone": "Asia/Taipei"}
    assert stored["target"]["method"] == "POST"


def test_a_task_made_in_the_form_fires_and_its_execution_appears_then_is_deleted(
    page: Page, console: Console, acme: httpx.Client, hook: Target
) -> None:
    name = "heartbeat"
    page.goto(console.page("/tasks/new"))
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("URL", exact=True).fill(hook.url("/heartbeat"))
    choose_schedule(page, "Interval")
    page.get_by_label("Interval (seconds)", exact=True).fill("2")
    page.get_by_role("button", name="Create").click()
    expect(page).to_have_url(re.compile(rf"/ui/tasks/{UUID}(\?.*)?$"))
    task_id = task_id_of(page)

    assert wait_until(lambda: requests_to(hook, "/heartbeat") >= 1, 30), "it never fired"
    until_shown(page, lambda: page.get_by_text("succeeded", exact=True))
    expect(page.get_by_role("cell", name="200", exact=True).first).to_be_visible()
    screenshot(page, "task", full_page=True)

    page.get_by_role("link", name="Delete", exact=True).click()
    expect(page).to_have_url(at(console, f"/tasks/{task_id}/delete"))
    assert acme.get(f"/v1/tasks/{task_id}").status_code == 200  # asked, not yet done
    page.get_by_role("button", name="Delete", exact=True).click()
    notice(page, "Task deleted.")
    assert acme.get(f"/v1/tasks/{task_id}").status_code == 404
    expect(page.get_by_role("link", name=name, exact=True)).to_have_count(0)


def test_pause_with_a_reason_then_resume(
    page: Page, console: Console, acme: httpx.Client, hook: Target
) -> None:
    task = create_task(acme, "supplier-sync", hook.url("/supplier-sync"))
    page.goto(console.page(f"/tasks/{task['id']}"))
    expect(page.get_by_text("active", exact=True).first).to_be_visible()
    page.get_by_label("Reason").fill("supplier maintenance until 06:00")
    page.get_by_role("button", name="Pause").click()
    notice(page, "Task paused.")
    expect(page.get_by_text("paused", exact=True).first).to_be_visible()
    expect(page.get_by_text("supplier maintenance until 06:00").first).to_be_visible()
    stored = acme.get(f"/v1/tasks/{task['id']}").json()
    assert stored["status"] == "paused"
    assert stored["paused_reason"] == "supplier maintenance until 06:00"

    page.get_by_role("button", name="Resume").click()
    notice(page, "Task resumed.")
    expect(page.get_by_text("active", exact=True).first).to_be_visible()
    assert acme.get(f"/v1/tasks/{task['id']}").json()["status"] == "active"


def test_run_now_fires_at_once_and_the_execution_appears(
    page: Page, console: Console, acme: httpx.Client, hook: Target
) -> None:
    task = create_task(acme, "cache-warmup", hook.url("/cache-warmup"))
    page.goto(console.page(f"/tasks/{task['id']}"))
    page.get_by_role("button", name="Run now").click()
    notice(page, "Task fired")
    assert wait_until(lambda: requests_to(hook, "/cache-warmup") == 1, 30), "it never fired"
    until_shown(page, lambda: page.get_by_text("succeeded", exact=True))
    wait_for_status(acme, task["id"], "succeeded")


def test_editing_the_schedule_previews_it_while_typing_then_saves_it(
    page: Page, console: Console, acme: httpx.Client, hook: Target
) -> None:
    task = create_task(acme, "invoice-run", hook.url("/invoice-run"))
    page.goto(console.page(f"/tasks/{task['id']}"))
    page.get_by_role("link", name="Edit", exact=True).click()
    expect(page).to_have_url(at(console, f"/tasks/{task['id']}/edit"))
    form = page.locator("form[data-preview]")
    preview = page.locator(f"#{form.get_attribute('data-preview')}")
    expect(preview).to_contain_text("00:00")
    before = preview.inner_text()

    cron = textbox(page, "Cron")
    cron.click()
    cron.press("Control+a")
    cron.press_sequentially("30 18 * * 1-5", delay=40)
    # The preview follows the typing while the field still has the focus.
    expect(preview).to_contain_text("18:30")
    assert preview.inner_text() != before
    assert cron.evaluate("element => element === document.activeElement")
    # A cron that does not hold (a sixth field) is said so as one types, then mended.
    cron.press_sequentially(" *", delay=40)
    expect(preview).not_to_contain_text("18:30")
    cron.press("Backspace")
    cron.press("Backspace")
    expect(preview).to_contain_text("18:30")
    assert cron.evaluate("element => element === document.activeElement")

    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(at(console, f"/tasks/{task['id']}"))
    notice(page, "Task saved.")
    expect(page.get_by_text(re.compile("At 18:30, Monday through Friday")).first).to_be_visible()
    assert acme.get(f"/v1/tasks/{task['id']}").json()["schedule"]["cron"] == "30 18 * * 1-5"


def test_the_task_list_says_each_schedule_in_words_and_searches_by_prefix(
    page: Page, console: Console, acme: httpx.Client, hook: Target
) -> None:
    daily = create_task(
        acme,
        "report-daily",
        hook.url("/daily"),
        schedule={"cron": "0 9 * * MON-FRI", "timezone": "Asia/Taipei"},
        tags={"team": "finance"},
    )
    create_task(acme, "report-weekly", hook.url("/weekly"), schedule={"interval_seconds": 604800})
    backup = create_task(acme, "backup-db", hook.url("/backup"))
    acme.post(f"/v1/tasks/{backup['id']}/pause", json={"reason": "disk full"})

    nav(page, "Tasks").click()
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="report-daily"))
    expect(row).to_contain_text("At 09:00, Monday through Friday (Asia/Taipei)")
    expect(row).to_contain_text("active")
    backup_row = page.get_by_role("row").filter(has=page.get_by_role("link", name="backup-db"))
    expect(backup_row).to_contain_text("paused")
    screenshot(page, "tasks")

    page.get_by_label("Search").fill("report-")
    page.get_by_label("Search").press("Enter")
    expect(page.get_by_role("link", name=re.compile("^report-"))).to_have_count(2)
    expect(page.get_by_role("link", name="backup-db")).to_have_count(0)
    page.get_by_role("link", name="report-daily").click()
    expect(page).to_have_url(at(console, f"/tasks/{daily['id']}"))


def test_the_task_list_is_readable_at_phone_width(
    browser: Browser, console: Console, acme_key: str
) -> None:
    context = new_context(browser, viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        sign_in(page, console, acme_key)
        page.goto(console.page("/tasks"))
        expect(page.get_by_role("link", name="New task")).to_be_visible()
        # Nothing is wider than the screen: a wide table scrolls in a box of its own.
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], width
        screenshot(page, "tasks-phone")
    finally:
        context.close()


def test_the_overview_shows_how_the_tasks_fared(page: Page, console: Console) -> None:
    nav(page, "Overview").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.locator("[data-refresh-seconds]").first).to_be_attached()
    screenshot(page, "overview", full_page=True)


# --- dead letters and signing secrets -----------------------------------------------------


def make_dead_letters(api: httpx.Client, hook: Target, names: list[str]) -> list[str]:
    """Tasks whose one attempt gets a 503 (``/flaky/1``: a 200 to the next try of the
    same idempotency key): each leaves a dead letter that a redrive then delivers."""
    ids = []
    for name in names:
        soon = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
        task = create_task(
            api,
            name,
            hook.url(f"/flaky/1/{name}"),
            schedule={"at": soon.isoformat()},
            retry={"max_attempts": 1},
        )
        ids.append(task["id"])
    for task_id in ids:
        wait_for_status(api, task_id, "dead")
    return ids


def test_redrive_one_dead_letter_then_all_matching_after_seeing_how_many(
    context: BrowserContext, console: Console, hook: Target
) -> None:
    key = console.new_key("oncall")
    names = ["nightly-export", "invoice-sync"]
    with console.api(key) as api:
        first, second = make_dead_letters(api, hook, names)
        page = context.new_page()
        sign_in(page, console, key)
        nav(page, "Dead letters").click()
        rows = page.get_by_role("row")
        for name in names:
            expect(rows.filter(has_text=name)).to_have_count(1)
            expect(rows.filter(has_text=name)).to_contain_text("503")
        screenshot(page, "dead-letters")

        rows.filter(has_text=names[0]).get_by_role("button", name="Redrive").click()
        notice(page, "Dead letter redriven.")
        wait_for_status(api, first, "succeeded")
        assert requests_to(hook, f"/flaky/1/{names[0]}") == 2

        page.goto(console.page("/dead-letters"))
        expect(rows.filter(has_text=names[0])).to_have_count(0)
        page.get_by_role("link", name="Redrive all matching").click()
        expect(page).to_have_url(re.compile(r"/ui/dead-letters/redrive"))
        expect(page.get_by_text(re.compile(r"\b1 dead letter\b"))).to_be_visible()
        page.get_by_role("button", name="Redrive all matching").click()
        notice(page, "Matching dead letters redriven.")
        wait_for_status(api, second, "succeeded")
        assert api.get("/v1/dead-letters").json()["items"] == []


def test_a_signing_secret_is_shown_once_then_only_as_its_hint_and_can_be_revoked(
    context: BrowserContext, console: Console
) -> None:
    key = console.new_key("signer")
    page = context.new_page()
    sign_in(page, console, key)
    nav(page, "Signing secrets").click()
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_label("New signing secret")).to_be_visible()  # the answer has come
    secret = re.search(r"whsec_[A-Za-z0-9_-]{20,}", everything_shown(page))
    assert secret, everything_shown(page)
    nav(page, "Signing secrets").click()
    expect(page.get_by_text(f"whsec_…{secret.group(0)[-4:]}", exact=True)).to_be_visible()
    assert secret.group(0) not in page.content()
    screenshot(page, "signing-secrets")
    page.get_by_role("button", name="Revoke").click()
    notice(page, "Signing secret revoked.")
    with console.api(key) as api:
        (listed,) = api.get("/v1/signing-secrets").json()["items"]
        assert listed["revoked_at"]


def test_a_standard_webhooks_secret_is_created_from_the_scheme_choice(
    context: BrowserContext, console: Console
) -> None:
    key = console.new_key("webhooks")
    page = context.new_page()
    sign_in(page, console, key)
    nav(page, "Signing secrets").click()
    page.get_by_label("Scheme").select_option("standard-webhooks")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_label("New signing secret")).to_be_visible()  # the answer has come
    secret = re.search(r"whsec_[A-Za-z0-9+/=]{40,}", everything_shown(page))
    assert secret, everything_shown(page)
    Webhook(secret.group(0))  # the spec's reference library reads it as it is shown
    nav(page, "Signing secrets").click()
    expect(page.get_by_role("cell", name="standard-webhooks", exact=True)).to_be_visible()
    assert secret.group(0) not in page.content()
    with console.api(key) as api:
        (listed,) = api.get("/v1/signing-secrets").json()["items"]
        assert listed["scheme"] == "standard-webhooks"


# --- what must never happen ----------------------------------------------------------------


def test_a_task_change_without_the_csrf_token_is_refused_and_changes_nothing(
    page: Page, console: Console, acme: httpx.Client, hook: Target
) -> None:
    task = create_task(acme, "guarded", hook.url("/guarded"))
    before = acme.get("/v1/tasks", params={"limit": 500}).json()["items"]
    page.goto(console.page(f"/tasks/{task['id']}"))
    page.get_by_label("Reason").fill("forged")
    refused = {
        name: post_without_token(page, page.get_by_role("button", name=name, exact=True))
        for name in ("Pause", "Run now")
    }
    page.get_by_role("link", name="Delete", exact=True).click()
    refused["Delete"] = post_without_token(page, page.get_by_role("button", name="Delete"))
    page.goto(console.page(f"/tasks/{task['id']}/edit"))
    textbox(page, "Name").fill("forged")
    refused["Save"] = post_without_token(page, page.get_by_role("button", name="Save"))
    page.goto(console.page("/tasks/new"))
    textbox(page, "Name").fill("forged")
    textbox(page, "URL").fill(hook.url("/forged"))
    refused["Create"] = post_without_token(page, page.get_by_role("button", name="Create"))
    assert refused == dict.fromkeys(refused, 403)
    assert acme.get("/v1/tasks", params={"limit": 500}).json()["items"] == before
    assert executions_of(acme, task["id"]) == []


def test_a_second_tenant_sees_nothing_of_the_first(
    browser: Browser, page: Page, console: Console, acme: httpx.Client, hook: Target
) -> None:
    task = create_task(acme, "acme-payroll", hook.url("/acme-payroll"))
    make_dead_letters(acme, hook, ["acme-ledger"])
    for path in (f"/tasks/{task['id']}", "/dead-letters"):  # acme itself sees them
        page.goto(console.page(path))
        expect(page.get_by_text(re.compile("acme-payroll|acme-ledger")).first).to_be_visible()

    context = new_context(browser)
    try:
        other = context.new_page()
        sign_in(other, console, console.new_key("globex"))
        nav(other, "Tasks").click()
        expect(other.get_by_role("heading", name="Tasks")).to_be_visible()
        nav(other, "Dead letters").click()
        expect(other.get_by_role("heading", name="Dead letters")).to_be_visible()
        for path in ("/", "/tasks", "/dead-letters", "/signing-secrets"):
            other.goto(console.page(path))
            expect(other.get_by_text(re.compile("acme-"))).to_have_count(0)
        for path in (f"/tasks/{task['id']}", f"/tasks/{task['id']}/edit"):
            response = other.goto(console.page(path))
            assert response is not None and response.status == 404, path
            expect(other.get_by_text("acme-payroll")).to_have_count(0)
    finally:
        context.close()


def test_a_name_and_a_response_with_html_are_shown_as_text(
    page: Page, dialogs: list[str], console: Console, acme: httpx.Client, hook: Target
) -> None:
    task = create_task(acme, XSS_NAME, hook.url("/html"))
    assert acme.post(f"/v1/tasks/{task['id']}/run").status_code == 202
    wait_for_status(acme, task["id"], "succeeded")

    page.goto(console.page("/tasks"))
    page.get_by_role("link", name=XSS_NAME).click()
    expect(page.get_by_role("heading", name=XSS_NAME)).to_be_visible()
    expect(page.get_by_text(HTML_ANSWER).first).to_be_visible()
    page.get_by_role("link", name="Edit", exact=True).click()
    expect(page.get_by_label("Name", exact=True)).to_have_value(XSS_NAME)
    for at in ("/", "/tasks", f"/tasks/{task['id']}"):
        page.goto(console.page(at))
        assert page.locator("img[src=x], img[src=y], #injected").count() == 0, at
    assert dialogs == []
