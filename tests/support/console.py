"""The web console under test: a browser-like client signed in with an API key, and the
anti-forgery token a page carries."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
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


class Form(HTMLParser):
    """The values a browser would post from a page's task form, and each input's
    attributes by id."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self.attrs: dict[str, dict[str, str | None]] = {}
        self._textarea: str | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.attrs[str(found["id"])] = found
        name = found.get("name")
        if tag == "input" and name:
            if found.get("type") != "checkbox" or "checked" in found:
                self.values[name] = found.get("value") or ""
        elif tag == "textarea" and name:
            self._textarea = name
            self.values[name] = ""
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in found:
            self.values[self._select] = found.get("value") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.values[self._textarea] += data


def form_of(html: str) -> Form:
    form = Form()
    form.feed(html)
    for name in ("headers", "body", "tags"):
        # A browser drops the newline that opens a textarea's content.
        form.values[name] = form.values.get(name, "").removeprefix("\n")
    return form
