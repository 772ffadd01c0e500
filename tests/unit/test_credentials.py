"""taskhub.credentials: which headers are credentials, and how they are shown."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskhub.credentials import is_secret, mask, split


@pytest.mark.parametrize(
    "name", ["Authorization", "authorization", "COOKIE", "X-Api-Key", "Api-Key", "X-Auth-Token"]
)
def test_builtin_credential_headers(name: str) -> None:
    assert is_secret(name)


def test_configured_names_and_others() -> None:
    assert not is_secret("X-Team")
    assert is_secret("x-signature-token", ["X-Signature-Token"])


def test_split_keeps_names() -> None:
    plain, secret = split({"X-Team": "a", "Authorization": "b", "X-Mine": "c"}, ["x-mine"])
    assert plain == {"X-Team": "a"}
    assert secret == {"Authorization": "b", "X-Mine": "c"}


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("Bearer abcdefghijklmnopwxyz", "Bearer ****wxyz"),
        ("Bearer short", "Bearer ****"),
        ("0123456789abcdef", "****cdef"),
        ("0123456789abcde", "****"),
        ("", "****"),
        ("x", "****"),
        ("Basic dXNlcjpwYXNzd29yZA==", "Basic ****ZA=="),
    ],
)
def test_mask(value: str, shown: str) -> None:
    assert mask(value) == shown


@given(st.text(max_size=80))
def test_mask_never_shows_more_than_the_last_four_characters(value: str) -> None:
    shown = mask(value)
    assert "****" in shown
    tail = shown.split("****", 1)[1]
    assert len(tail) <= 4
    if len(value) < 16:
        assert tail == ""
    assert mask(value) == shown  # stable: a client can send it back
