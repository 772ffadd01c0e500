"""taskhub.credentials: which headers are credentials, and how they are shown."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskhub.core.credentials import (
    MIN_STRIPPED_CHARS,
    REDACTED,
    is_secret,
    mask,
    split,
    strip_values,
)


@pytest.mark.parametrize(
    "name", ["Authorization", "authorization", "COOKIE", "X-Api-Key", "Api-Key", "X-Auth-Token"]
)
def test_builtin_credential_headers(name: str) -> None:
    assert is_secret(name)


def test_configured_names_and_others() -> None:
    assert not is_secret("X-Team")
    assert not is_secret("x-partner-ref")
    assert is_secret("x-partner-ref", ["X-Partner-Ref"])


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


@pytest.mark.parametrize(
    "name",
    [
        "X-Access-Token",
        "Private-Token",
        "X-Refresh-Token",
        "X-Client-Secret",
        "X-Api_Key",
        "Apikey",
        "X-Password",
        "Proxy-Authorization",
        "X-Amz-Security-Token",
        "X-Private-Key",
        "X-Credentials",
    ],
)
def test_names_with_a_credential_word_are_credentials(name: str) -> None:
    assert is_secret(name)


@pytest.mark.parametrize("name", ["X-Team", "Accept", "Content-Type", "X-Request-Id", "X-Author"])
def test_ordinary_names_are_not(name: str) -> None:
    assert not is_secret(name)


#: Credential values: the characters tokens, keys and cookies are made of.
#: The characters of the text around an echo: the noise, the echoes' own syntax and the
#: redaction marker. A value made only of these could be rebuilt by its surroundings
#: after it was stripped (``"}}[`` from ``"}}`` and ``[redacted]``), which is no leak.
NOISE_ALPHABET = " \n{}[]:,\"'=x"
SURROUNDINGS = set(NOISE_ALPHABET + REDACTED + '{"headers": {"Authorization": }}\\/\r/?=&%')
VALUE = st.text(
    alphabet=st.characters(
        codec="utf-8", exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp"), exclude_characters=";"
    ),
    min_size=MIN_STRIPPED_CHARS,
    max_size=60,
).filter(lambda v: v == v.strip() and not set(v) <= SURROUNDINGS)
SCHEME = st.sampled_from(["", "Bearer ", "Token ", "Basic ", "Digest "])
#: Text around the echo that cannot itself rebuild the value.
NOISE = st.text(alphabet=NOISE_ALPHABET, max_size=40)


def echoes(value: str) -> list[str]:
    """The ways an echo server may put a header value into its response."""
    return [
        value,
        json.dumps({"headers": {"Authorization": value}}),
        json.dumps({"headers": {"Authorization": value}}, ensure_ascii=False),
        json.dumps(json.dumps({"Authorization": value})),  # JSON in a JSON string
        json.dumps({"Authorization": value}).replace("/", "\\/"),  # PHP's json_encode
        f"Authorization: {value}\r\n",
        f"/callback?auth={quote(value, safe='')}",
    ]


@given(scheme=SCHEME, value=VALUE, before=NOISE, after=NOISE)
def test_a_stripped_value_never_survives_any_echo(
    scheme: str, value: str, before: str, after: str
) -> None:
    header = scheme + value
    for echo in echoes(header):
        text = strip_values(before + echo + after, [header])
        assert value not in text, echo
        assert json.dumps(value)[1:-1] not in text
        assert quote(value, safe="") not in text


@given(value=VALUE, cut_at=st.integers(min_value=MIN_STRIPPED_CHARS, max_value=59))
def test_a_value_cut_short_at_the_end_is_stripped_when_the_text_was_cut(
    value: str, cut_at: int
) -> None:
    text = "echo: " + value[:cut_at]
    stripped = strip_values(text, [value], cut=True)
    assert stripped.endswith(REDACTED)
    assert value[: min(cut_at, len(value))] not in stripped


def test_cookie_values_and_short_parts() -> None:
    cookie = "theme=dark; session=0123456789abcdef"
    text = strip_values('{"cookies": {"session": "0123456789abcdef", "theme": "dark"}}', [cookie])
    assert text == '{"cookies": {"session": "[redacted]", "theme": "[redacted]"}}'
    assert strip_values("a b c 123", ["123"]) == "a b c 123"  # too short to look for
    assert strip_values("nothing here", []) == "nothing here"
