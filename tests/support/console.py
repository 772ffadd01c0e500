"""The web console under test: a TestClient signed in the way a browser is (the API key
posted to the sign-in page, the session kept as a cookie), and the page's anti-forgery
token as a form carries it."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]*)">')


def signed_in_client(app: Any, key: str) -> TestClient:
    """A client of ``app`` holding a console session of ``key``'s tenant."""
    browser = TestClient(app)
    response = browser.post("/ui/sign-in", data={"api_key": key}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return browser


def csrf_of(html: str) -> str:
    """The anti-forgery token a page carries (its ``<meta name="csrf-token">``)."""
    found = _CSRF.search(html)
    assert found is not None and found.group(1), "the page carries no csrf token"
    return found.group(1)
