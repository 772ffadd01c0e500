"""Console sessions through the app: an API key exchanged for a cookie, the cookie's
attributes, and every way a session ends (sign-out, revoked key, expiry, forgery)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from taskhub.api.app import create_app
from taskhub.core.settings import load
from taskhub.db.models import console_sessions
from taskhub.service import apikeys, quotas
from tests.support.api import Clock, new_key, with_env

START = datetime(2030, 1, 7, tzinfo=UTC)
COOKIE = "taskhub_session"


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def browser(engine: Engine, clock: Clock) -> TestClient:
    app = create_app(
        engine=engine, clock=clock, settings=with_env(TASKHUB_CONSOLE_SESSION_HOURS="2")
    )
    return TestClient(app, follow_redirects=False)


def sign_in(browser: TestClient, key: str, next_page: str = "") -> str:
    """Sign in and return the session cookie's value."""
    answer = browser.post("/ui/sign-in", data={"api_key": key, "next": next_page})
    assert answer.status_code == 303, answer.text
    cookie = browser.cookies.get(COOKIE)
    assert cookie
    return cookie


def csrf_of(html: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]*)">', html)
    assert found, html
    return found.group(1)


def signed_in(browser: TestClient) -> bool:
    """Whether the overview is shown (not the sign-in page)."""
    answer = browser.get("/ui/")
    if answer.status_code == 303:
        assert answer.headers["location"].startswith("/ui/sign-in")
        return False
    assert answer.status_code == 200
    return True


def test_without_a_session_every_page_leads_to_sign_in(browser: TestClient) -> None:
    answer = browser.get("/ui/")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/sign-in?next=%2Fui%2F"
    page = browser.get("/ui/sign-in")
    assert page.status_code == 200
    assert '<label for="api_key">API key</label>' in page.text


def test_a_bad_key_is_refused_and_no_cookie_is_set(engine: Engine, browser: TestClient) -> None:
    for presented in ("", "nope", "th_abcdefgh_" + "x" * 32):
        answer = browser.post("/ui/sign-in", data={"api_key": presented})
        assert answer.status_code == 401
        assert "not valid" in answer.text
        assert COOKIE not in answer.headers.get("set-cookie", "")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(console_sessions)).scalar() == 0


def test_the_cookie_is_httponly_strict_scoped_and_expiring(
    engine: Engine, browser: TestClient
) -> None:
    key = new_key(engine, "acme")
    answer = browser.post("/ui/sign-in", data={"api_key": key, "next": "/ui/tasks"})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/tasks"
    attributes = [part.strip().lower() for part in answer.headers["set-cookie"].split(";")]
    assert "httponly" in attributes
    assert "samesite=strict" in attributes
    assert "path=/ui" in attributes
    assert "max-age=7200" in attributes
    page = browser.get("/ui/")
    assert page.status_code == 200
    assert "<strong>acme</strong>" in page.text
    assert key not in page.text


def test_only_a_digest_of_the_cookie_token_is_stored(engine: Engine, browser: TestClient) -> None:
    cookie = sign_in(browser, new_key(engine, "acme"))
    token = cookie.split(".")[0]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(console_sessions)).mappings().all()
    assert len(rows) == 1
    assert token not in str(dict(rows[0]))
    assert rows[0]["tenant"] == "acme"


def test_sign_in_goes_back_only_to_a_console_page(engine: Engine, browser: TestClient) -> None:
    key = new_key(engine, "acme")
    for next_page, landing in [
        ("https://evil.example/", "/ui/"),
        ("//evil.example/ui/", "/ui/"),
        ("/ui//evil.example", "/ui/"),
        ("/ui/dead-letters", "/ui/dead-letters"),
    ]:
        answer = browser.post("/ui/sign-in", data={"api_key": key, "next": next_page})
        assert answer.headers["location"] == landing, next_page


def test_sign_out_ends_the_session_on_the_server(engine: Engine, browser: TestClient) -> None:
    cookie = sign_in(browser, new_key(engine, "acme"))
    csrf = csrf_of(browser.get("/ui/").text)
    answer = browser.post("/ui/sign-out", data={"csrf_token": csrf})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/sign-in?notice=signed-out"
    assert not signed_in(browser)
    browser.cookies.set(COOKIE, cookie, path="/ui")  # the old cookie, kept by an attacker
    assert not signed_in(browser)


def test_sign_out_without_the_csrf_token_is_refused(engine: Engine, browser: TestClient) -> None:
    sign_in(browser, new_key(engine, "acme"))
    for data in ({}, {"csrf_token": "forged"}):
        answer = browser.post("/ui/sign-out", data=data)
        assert answer.status_code == 403
        assert "refused" in answer.text
    assert signed_in(browser)
    header = browser.post(
        "/ui/sign-out", headers={"X-CSRF-Token": csrf_of(browser.get("/ui/").text)}
    )
    assert header.status_code == 303
    assert not signed_in(browser)


def test_revoking_the_key_ends_its_sessions(engine: Engine, browser: TestClient) -> None:
    key = new_key(engine, "acme")
    sign_in(browser, key)
    assert signed_in(browser)
    with engine.begin() as conn:
        apikeys.revoke_key(conn, key, datetime.now(UTC))
    assert not signed_in(browser)
    assert browser.post("/ui/sign-in", data={"api_key": key}).status_code == 401


def test_a_session_expires(engine: Engine, browser: TestClient, clock: Clock) -> None:
    sign_in(browser, new_key(engine, "acme"))
    clock.now += timedelta(hours=1, minutes=59)
    assert signed_in(browser)
    clock.now += timedelta(minutes=2)
    assert not signed_in(browser)


def changed(text: str) -> str:
    """``text`` with one character in its middle replaced (never the last, whose spare
    base64 bits may decode the same)."""
    middle = len(text) // 2
    return text[:middle] + ("B" if text[middle] == "A" else "A") + text[middle + 1 :]


def test_a_forged_or_mangled_cookie_is_refused(engine: Engine, browser: TestClient) -> None:
    cookie = sign_in(browser, new_key(engine, "acme"))
    token, signature = cookie.split(".")
    for forged in (
        f"{token}.{changed(signature)}",
        f"{changed(token)}.{signature}",
        token,
        "",
        "a.b.c",
    ):
        browser.cookies.clear()
        browser.cookies.set(COOKIE, forged, path="/ui")
        assert not signed_in(browser), forged


def test_each_session_has_its_own_csrf_token(engine: Engine, browser: TestClient) -> None:
    app = browser.app
    other = TestClient(app, follow_redirects=False)
    sign_in(browser, new_key(engine, "acme"))
    sign_in(other, new_key(engine, "acme"))
    mine, theirs = csrf_of(browser.get("/ui/").text), csrf_of(other.get("/ui/").text)
    assert mine != theirs
    assert browser.post("/ui/sign-out", data={"csrf_token": theirs}).status_code == 403


def test_pages_are_sent_with_protective_headers(engine: Engine, browser: TestClient) -> None:
    sign_in(browser, new_key(engine, "acme"))
    page = browser.get("/ui/")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert browser.get("/ui/static/console.js").status_code == 200


def test_pages_count_against_the_tenants_request_rate(
    engine: Engine, browser: TestClient, clock: Clock
) -> None:
    sign_in(browser, new_key(engine, "acme"))
    with engine.begin() as conn:
        quotas.set_limits(conn, "acme", {"requests_per_second": 3}, clock.now, load())
    assert [browser.get("/ui/").status_code for _ in range(3)] == [200] * 3
    refused = browser.get("/ui/")
    assert refused.status_code == 429
    assert "requests_per_second limit is 3" in refused.text
    clock.now += timedelta(seconds=1)
    assert browser.get("/ui/").status_code == 200
