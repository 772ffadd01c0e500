"""taskhub.signing: the X-Taskhub-Signature header, made and verified (pure)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskhub.core import signing
from taskhub.core.signing import HEADER, hint, new_secret, sign, verify

SECRET_A = "whsec_" + "a" * 43
SECRET_B = "whsec_" + "b" * 43
T = 1_800_000_000

secrets_ = st.text(min_size=1, max_size=60)
bodies = st.binary(max_size=300)
times = st.integers(min_value=0, max_value=2**40)


def test_header_shape() -> None:
    value = sign([SECRET_A, SECRET_B], b"{}", T)
    t, v1a, v1b = value.split(",")
    assert t == f"t={T}"
    assert v1a.startswith("v1=") and len(v1a) == 3 + 64
    assert v1b.startswith("v1=") and v1a != v1b
    assert HEADER == "X-Taskhub-Signature"


def test_known_vector() -> None:
    # HMAC-SHA256(key="whsec_test", msg="1700000000.hello"), computed independently.
    import hashlib
    import hmac

    expected = hmac.new(b"whsec_test", b"1700000000.hello", hashlib.sha256).hexdigest()
    assert sign(["whsec_test"], b"hello", 1_700_000_000) == f"t=1700000000,v1={expected}"


def test_new_secrets_are_random_and_prefixed() -> None:
    a, b = new_secret(), new_secret()
    assert a != b and a.startswith("whsec_") and len(a) == 6 + 43
    assert hint(a) == f"whsec_…{a[-4:]}" and a[6:-4] not in hint(a)


@given(secret=secrets_, body=bodies, t=times)
def test_round_trip(secret: str, body: bytes, t: int) -> None:
    assert verify(sign([secret], body, t), body, [secret], now=t)


@given(body=bodies, t=times, which=st.sampled_from([SECRET_A, SECRET_B]))
def test_a_receiver_holding_either_of_two_secrets_verifies(body: bytes, t: int, which: str) -> None:
    header = sign([SECRET_A, SECRET_B], body, t)
    assert verify(header, body, [which], now=t)
    assert not verify(header, body, ["whsec_other"], now=t)


@given(body=bodies.filter(bool), t=times, data=st.data())
def test_any_single_byte_change_of_the_body_fails(body: bytes, t: int, data: st.DataObject) -> None:
    header = sign([SECRET_A], body, t)
    i = data.draw(st.integers(0, len(body) - 1))
    flip = data.draw(st.integers(1, 255))
    tampered = body[:i] + bytes([body[i] ^ flip]) + body[i + 1 :]
    assert not verify(header, tampered, [SECRET_A], now=t)


@given(body=bodies, t=times, data=st.data())
def test_any_single_character_change_of_the_signature_fails(
    body: bytes, t: int, data: st.DataObject
) -> None:
    header = sign([SECRET_A], body, t)
    i = data.draw(st.integers(0, len(header) - 1))
    replacement = data.draw(st.characters(codec="ascii").filter(lambda c: c != header[i]))
    tampered = header[:i] + replacement + header[i + 1 :]
    assert not verify(tampered, body, [SECRET_A], now=t)


@given(body=bodies, t=times, delta=st.integers(min_value=1, max_value=10**6))
def test_a_changed_timestamp_fails(body: bytes, t: int, delta: int) -> None:
    header = sign([SECRET_A], body, t)
    mac = header.split(",", 1)[1]
    assert not verify(f"t={t + delta},{mac}", body, [SECRET_A], now=t + delta)


@given(body=bodies, t=times, late=st.integers(min_value=301, max_value=10**8))
def test_timestamps_outside_the_tolerance_are_rejected_either_way(
    body: bytes, t: int, late: int
) -> None:
    header = sign([SECRET_A], body, t)
    assert not verify(header, body, [SECRET_A], now=t + late)  # replayed later
    assert not verify(header, body, [SECRET_A], now=t - late)  # from the future
    assert verify(header, body, [SECRET_A], now=t + 300)
    assert verify(header, body, [SECRET_A], tolerance_s=late, now=t + late)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "t=1",
        "v1=00",
        "t=abc,v1=00",
        "t=1,t=2,v1=00",
        "garbage",
        "t=-1,v1=00",
        "x" * 5000,
        "t=²,v1=00",
        "t=" + "9" * 400 + ",v1=00",
        "t=" + "9" * 5000 + ",v1=00",
    ],
)
def test_malformed_headers_are_false_not_errors(header: str) -> None:
    assert not verify(header, b"", [SECRET_A], now=1)


def test_no_secrets_never_verifies() -> None:
    assert not verify(sign([SECRET_A], b"x", T), b"x", [], now=T)


# --- the documented verifier is this package's verify, character for character --------

SECURITY_DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def readme_verifier() -> str:
    """The Python block of docs/security.md that defines ``verify``."""
    blocks: list[str] = re.findall(
        r"```python\n(.*?)```", SECURITY_DOC.read_text(), flags=re.DOTALL
    )
    [block] = [b for b in blocks if "def verify(" in b]
    return block


def test_the_readme_verifier_is_the_packages_own_code() -> None:
    block = readme_verifier()
    assert block.endswith("\n\n\n" + inspect.getsource(signing.verify))


def _readme_verify() -> Callable[..., bool]:
    namespace: dict[str, Any] = {}
    exec(readme_verifier(), namespace)  # the snippet as a receiver pastes it
    verify_: Callable[..., bool] = namespace["verify"]
    return verify_


readme_verify = _readme_verify()
GOOD = sign([SECRET_A], b"{}", T)
MAC = GOOD.split(",", 1)[1]


@pytest.mark.parametrize(
    "header",
    [
        GOOD,
        "t=²,v1=00",
        f"t=²,{MAC}",
        "t=" + "9" * 5000 + ",v1=00",
        "t=" + "9" * 400 + f",{MAC}",
        "t=" + "9" * 16 + ",v1=00",
        "t=١٨٠٠٠٠٠٠٠٠," + MAC,  # Arabic-Indic digits
        f"t={T},v1=\ud800",
        f"t={T},v1=é{MAC[4:]}",
        f"t={T}, {MAC}",
        f"t={T},{MAC},t={T}",
        f"t=0{T},{MAC}",
        f"{MAC},t={T}",
    ],
)
def test_the_readme_verifier_and_verify_agree_and_never_raise(header: str) -> None:
    for now in (T, T + 301, float("nan")):
        expected = verify(header, b"{}", [SECRET_A], now=now)
        assert readme_verify(header, b"{}", [SECRET_A], now=now) is expected
    assert verify(GOOD, b"{}", [SECRET_A], now=T)


@given(header=st.text(max_size=200), now=times)
def test_any_header_is_true_or_false_the_same_way_in_both(header: str, now: int) -> None:
    expected = verify(header, b"", [SECRET_A], now=now)
    assert isinstance(expected, bool)
    assert readme_verify(header, b"", [SECRET_A], now=now) is expected
