"""The web console under test: a browser-like client signed in with an API key, and the
anti-forgery token a page carries."""

from __future__ import annotations

import html
import re
from typing import Any

from fastapi.testclient import TestClient

_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]*)"')


def signed_in_client(app: Any, key: str) -> TestClient:
    """A client (no API key header: only the session cookie) that signed in with ``key``."""
    browser = TestClient(app)
    response = browser.post("/ui/sign-in", data={"api_key": key}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return browser


def csrf_of(page: str) -> str:
    """The anti-forgery token of a console page (its ``<meta name="csrf-token">``)."""
    found = _CSRF.search(page)
    assert found is not None and found.group(1), "the page carries no csrf token"
    return html.unescape(found.group(1))
