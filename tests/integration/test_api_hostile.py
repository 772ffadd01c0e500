"""Hostile input against the body parser of ``POST /v1/tasks`` and ``PATCH /v1/tasks/{id}``
(hypothesis), on a real database (SQLite and PostgreSQL).

Bodies: raw bytes (non-UTF-8, invalid JSON, deep nesting, other encodings), and valid
tasks with fields replaced by hostile values (wrong types everywhere, NaN and Infinity,
huge numbers, control characters and CR-LF in header names and values, lone surrogates,
NUL). The API must never answer 5xx; a refusal has the one error shape and changes
nothing stored. Bounded so both backends take well under 30 s.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from taskhub.api.deps import MAX_REQUEST_BYTES
from taskhub.core.settings import load
from taskhub.service import quotas
from tests.support.api import T0, Api, dump

EXAMPLES = 40

VALID: dict[str, Any] = {
    "name": "hostile",
    "schedule": {"cron": "0 9 * * 1-5", "timezone": "Asia/Taipei"},
    "target": {
        "url": "https://example.com/hook",
        "method": "POST",
        "headers": {"X-Team": "billing", "Authorization": "Bearer 0123456789abcdef"},
        "body": "{}",
        "timeout_seconds": 30,
    },
    "retry": {"max_attempts": 3, "backoff_seconds": 10, "max_backoff_seconds": 600},
    "tags": {"team": "billing"},
}

#: Raw JSON number tokens that ``json.dumps`` cannot produce from a value.
RAW_TOKENS = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1" + "0" * 5000, "1e-999"]
HOSTILE_STRINGS = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "a\r\nX-Injected: 1",
    "\r\n\r\nGET / HTTP/1.1",
    "\t",
    "\x7f",
    "\ud800",
    "a\udfffb",
    "\u2028\u2029",
    "é" * 20,
    "x" * 9000,
    "0 0 30 2 *",
    "* * * * * *",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]:80/",
    "http://user:pw@example.com/",
    "javascript:alert(1)",
    "https://example.com/" + "a" * 3000,
    "Mars/Olympus",
    "9999-12-31T23:59:59+00:00",
    "0001-01-01T00:00:00+14:00",
    "2030-01-01T00:00:00",
    "Idempotency-Key",
    "X-Taskhub-Attempt",
    "Bearer ****",
    *[f"__RAW__{token}" for token in RAW_TOKENS],
]
KEYS = ["name", "schedule", "target", "url", "headers", "cron", "at", "__proto__", "", "\x00"]
HEADER_NAMES = [
    "X-Ok",
    "Authorization",
    "Cookie",
    "X-Bad\r\nInjected",
    "Bad Name",
    "Host",
    "X-Taskhub-Signature",
    "é",
    "",
    "\x00",
    "x" * 300,
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**63, -(2**63) - 1, 2**31, 10**30, 0, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(HOSTILE_STRINGS),
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), children, max_size=3
        )
    ),
    max_leaves=8,
)
headers = st.dictionaries(
    st.one_of(st.sampled_from(HEADER_NAMES), st.text(max_size=10)),
    st.one_of(st.sampled_from(HOSTILE_STRINGS), st.text(max_size=20), scalars),
    max_size=4,
)
PATHS = [
    ("name",),
    ("schedule",),
    ("schedule", "cron"),
    ("schedule", "timezone"),
    ("schedule", "interval_seconds"),
    ("schedule", "at"),
    ("target",),
    ("target", "url"),
    ("target", "method"),
    ("target", "headers"),
    ("target", "body"),
    ("target", "timeout_seconds"),
    ("retry",),
    ("retry", "max_attempts"),
    ("retry", "backoff_seconds"),
    ("retry", "max_backoff_seconds"),
    ("start_at",),
    ("end_at",),
    ("max_executions",),
    ("tags",),
    ("status",),
    ("id",),
    ("surprise",),
]


def _set(body: Any, path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        if not isinstance(body, dict):
            return
        body = body.setdefault(key, {})
    if isinstance(body, dict):
        body[path[-1]] = value


@st.composite
def hostile_tasks(draw: st.DrawFn) -> bytes:
    """A valid task with a few fields replaced, or any JSON value at all, as bytes."""
    if draw(st.integers(0, 9)) == 0:
        body: Any = draw(values)
    else:
        body = json.loads(json.dumps(VALID))
        for _ in range(draw(st.integers(1, 3))):
            path = draw(st.sampled_from(PATHS))
            value = draw(headers) if path == ("target", "headers") else draw(values)
            _set(body, path, value)
    text = json.dumps(body, allow_nan=True)
    for token in RAW_TOKENS:
        text = text.replace(json.dumps(f"__RAW__{token}"), token)
    return text.encode("utf-8", errors="surrogatepass")


raw_bodies = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(
        [
            b"",
            b"   ",
            b"\xff\xfe\x00",
            b'{"name": "\xff\xfe"}',
            b"[" * 100_000,
            b'{"a":' * 50_000,
            b"{" + b'"a":1,' * 10 + b"}",
            json.dumps(VALID).encode("utf-16"),
            json.dumps(VALID).encode("utf-32"),
            b"\xef\xbb\xbf" + json.dumps(VALID).encode(),
            b"null",
            b"[]",
            b'"string"',
            b"12",
        ]
    ),
    hostile_tasks().map(lambda b: b[: max(1, len(b) // 2)]),  # truncated JSON
)


class Hostile:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Hundreds of requests at one instant of the test clock: rates are not tested here.
        with engine.begin() as conn:
            quotas.set_limits(conn, "acme", {"requests_per_second": 0}, T0, load())
        self.client: TestClient = Api(engine, T0).a
        seeded = self.client.post("/v1/tasks", json={**VALID, "name": "seeded"})
        assert seeded.status_code == 201, seeded.text
        self.task_id = seeded.json()["id"]

    def check(self, method: str, path: str, body: bytes) -> None:
        before = dump(self.engine)
        response = self.client.request(
            method, path, content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code < 500, (response.status_code, response.text, body[:200])
        assert response.status_code != 429, "refused for its rate, so its input went unchecked"
        if response.status_code >= 400:
            error = response.json()
            assert set(error) == {"error"}, error
            assert set(error["error"]) == {"code", "message", "field"}, error
            assert isinstance(error["error"]["code"], str)
            assert isinstance(error["error"]["message"], str)
            field = error["error"]["field"]
            assert field is None or (isinstance(field, str) and field), error  # never ""
            assert dump(self.engine) == before, "a refused request changed what is stored"
        else:
            # Accepted: it really was a valid task, and nothing secret came back.
            assert "0123456789abcdef" not in response.text


@pytest.fixture
def hostile(engine: Engine) -> Hostile:
    return Hostile(engine)


BOUNDED = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@BOUNDED
@given(body=hostile_tasks())
def test_create_with_hostile_fields(hostile: Hostile, body: bytes) -> None:
    hostile.check("POST", "/v1/tasks", body)


@BOUNDED
@given(body=hostile_tasks())
def test_patch_with_hostile_fields(hostile: Hostile, body: bytes) -> None:
    hostile.check("PATCH", f"/v1/tasks/{hostile.task_id}", body)


@BOUNDED
@given(body=raw_bodies, method=st.sampled_from(["POST", "PATCH"]))
def test_hostile_bytes(hostile: Hostile, body: bytes, method: str) -> None:
    path = "/v1/tasks" if method == "POST" else f"/v1/tasks/{hostile.task_id}"
    hostile.check(method, path, body)


STRING_PATHS = [
    ("name",),
    ("schedule", "cron"),
    ("schedule", "timezone"),
    ("target", "url"),
    ("target", "method"),
    ("target", "body"),
    ("target", "headers", "X-Ok"),
    ("target", "headers", "Authorization"),
    ("tags", "team"),
    ("start_at",),
]


def test_every_hostile_string_in_every_string_field(hostile: Hostile) -> None:
    """The sweep hypothesis might miss: each hostile string in each string field, and as
    a header name and a tag key, through create and patch."""
    for text in HOSTILE_STRINGS:
        bodies: list[Any] = []
        for path in STRING_PATHS:
            body = json.loads(json.dumps(VALID))
            _set(body, path, text)
            bodies.append(body)
        for container in (("target", "headers"), ("tags",)):
            body = json.loads(json.dumps(VALID))
            _set(body, (*container, text), "value")
            bodies.append(body)
        for body in bodies:
            raw = json.dumps(body).encode()
            for token in RAW_TOKENS:
                raw = raw.replace(json.dumps(f"__RAW__{token}").encode(), token.encode())
            hostile.check("POST", "/v1/tasks", raw)
            hostile.check("PATCH", f"/v1/tasks/{hostile.task_id}", raw)


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_huge_bodies_are_refused_without_being_read(hostile: Hostile, method: str) -> None:
    path = "/v1/tasks" if method == "POST" else f"/v1/tasks/{hostile.task_id}"
    huge = b'{"name": "' + b"x" * (MAX_REQUEST_BYTES + 10) + b'"}'
    before = dump(hostile.engine)
    response = hostile.client.request(method, path, content=huge)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert dump(hostile.engine) == before


@pytest.mark.parametrize(
    ("method", "path", "raw"),
    [
        ("POST", "/v1/schedules/preview", b'{"schedule": {"cron": "\\ud800 * * * *"}}'),
        ("POST", "/v1/tasks/{id}/pause", b'{"reason": "\\udfff"}'),
        ("POST", "/v1/dead-letters/redrive", b'{"tags": {"\\ud800": "x"}}'),
    ],
)
def test_lone_surrogates_are_refused_on_every_route(
    hostile: Hostile, method: str, path: str, raw: bytes
) -> None:
    before = dump(hostile.engine)
    response = hostile.client.request(
        method,
        path.format(id=hostile.task_id),
        content=raw,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert "not valid Unicode" in response.json()["error"]["message"]
    assert dump(hostile.engine) == before
