"""taskhub.core.standard_webhooks: the webhook-* headers, checked against the reference
library of the spec (``standardwebhooks`` from PyPI), as a receiver runs it (pure)."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from taskhub.core import signing
from taskhub.core.standard_webhooks import key_of, new_secret, sign, signed_headers, verify

keys = st.binary(min_size=24, max_size=64)
bodies = st.binary(max_size=300)
# Idempotency keys are UUIDs; any printable id without a space signs the same way.
ids = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=60)
times = st.integers(min_value=0, max_value=2**33)


def secret_of(key: bytes) -> str:
    return "whsec_" + base64.b64encode(key).decode()


def now_s() -> int:
    return int(time.time())


def test_new_secrets_are_whsec_and_base64_of_32_random_bytes() -> None:
    a, b = new_secret(), new_secret()
    assert a != b and a.startswith("whsec_")
    assert len(key_of(a)) == 32 and base64.b64decode(a[6:]) == key_of(a)
    assert signing.hint(a) == f"whsec_…{a[-4:]}"


@pytest.mark.parametrize(
    "bad",
    ["whsec_", "whsec_not base64!", "sk_" + "A" * 44, "whsec_" + "A" * 28, "whsec_" + "A" * 100],
)
def test_a_secret_that_is_not_whsec_and_24_to_64_bytes_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        key_of(bad)


def test_the_reference_library_verifies_what_taskhub_sends() -> None:
    secret, body, sent = new_secret(), b'{"n": 1}', now_s()
    headers = signed_headers([secret], "b5d3c1e2-7a1f-5c3e-9d4b-0f1e2d3c4b5a", sent, body)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-timestamp"] == str(sent)
    assert Webhook(secret).verify(body, headers) == {"n": 1}
    # A tampered body, another secret, a stale timestamp: the reference refuses each.
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"n": 2}', headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    stale = signed_headers([secret], "id-1", sent - 301, body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, stale)


def test_two_secrets_during_a_rotation_each_verify() -> None:
    old, new, body, sent = new_secret(), new_secret(), b"[]", now_s()
    headers = signed_headers([old, new], "id-7", sent, body)
    entries = headers["webhook-signature"].split(" ")
    assert len(entries) == 2 and all(e.startswith("v1,") for e in entries)
    Webhook(old).verify(body, headers)
    Webhook(new).verify(body, headers)
    after = signed_headers([new], "id-8", sent, body)  # the old one revoked
    Webhook(new).verify(body, after)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(body, after)


def test_an_empty_body_is_signed_as_empty() -> None:
    secret, sent = new_secret(), now_s()
    headers = signed_headers([secret], "id-empty", sent, b"")
    assert Webhook(secret).verify(b"", headers, json_parse=False) is None


@given(key=keys, msg_id=ids, t=times, body=bodies)
def test_each_entry_is_the_reference_signature(
    key: bytes, msg_id: str, t: int, body: bytes
) -> None:
    secret = secret_of(key)
    reference = Webhook(secret).sign(msg_id, datetime.fromtimestamp(t, UTC), body)
    assert sign([secret], msg_id, t, body) == reference


@given(a=keys, b=keys, msg_id=ids, body=bodies)
def test_the_reference_verifies_with_either_secret_of_a_pair(
    a: bytes, b: bytes, msg_id: str, body: bytes
) -> None:
    sent = now_s()
    headers = signed_headers([secret_of(a), secret_of(b)], msg_id, sent, body)
    for key in (a, b):
        Webhook(secret_of(key)).verify(body, headers, json_parse=False)
        assert verify(headers, body, [secret_of(key)], now=sent)


@given(key=keys, msg_id=ids, t=times, body=bodies.filter(bool), data=st.data())
def test_any_single_byte_change_of_the_body_fails(
    key: bytes, msg_id: str, t: int, body: bytes, data: st.DataObject
) -> None:
    secret = secret_of(key)
    headers = signed_headers([secret], msg_id, t, body)
    i = data.draw(st.integers(0, len(body) - 1))
    flip = data.draw(st.integers(1, 255))
    tampered = body[:i] + bytes([body[i] ^ flip]) + body[i + 1 :]
    assert not verify(headers, tampered, [secret], now=t)
    assert verify(headers, body, [secret], now=t)


@given(key=keys, msg_id=ids, t=times, body=bodies, data=st.data())
def test_another_id_or_timestamp_fails(
    key: bytes, msg_id: str, t: int, body: bytes, data: st.DataObject
) -> None:
    """The id and the timestamp are signed too: a receiver's replay checks rest on them."""
    secret = secret_of(key)
    headers = signed_headers([secret], msg_id, t, body)
    other_id = data.draw(ids.filter(lambda i: i != msg_id))
    assert not verify({**headers, "webhook-id": other_id}, body, [secret], now=t)
    shifted = str(t + data.draw(st.integers(1, 300)))
    assert not verify({**headers, "webhook-timestamp": shifted}, body, [secret], now=t)


def test_verify_refuses_what_is_malformed_or_out_of_tolerance() -> None:
    secret, body, sent = new_secret(), b"{}", 1_800_000_000
    headers = signed_headers([secret], "id", sent, body)
    assert verify(headers, body, [secret], now=sent + 300)
    assert verify({k.upper(): v for k, v in headers.items()}, body, [secret], now=sent)
    assert not verify(headers, body, [secret], now=sent + 301)
    assert not verify(headers, body, [secret], now=sent - 301)
    for name in headers:
        missing = {k: v for k, v in headers.items() if k != name}
        assert not verify(missing, body, [secret], now=sent)
    for stamp in ("", "1.5", "-1", "²", "9" * 16):
        assert not verify({**headers, "webhook-timestamp": stamp}, body, [secret], now=sent)
    assert not verify(headers, body, ["whsec_broken"], now=sent)
    assert not verify({**headers, "webhook-signature": "v1,"}, body, [secret], now=sent)


# --- the receiver in docs/security.md works as it says ----------------------------------------

SECURITY_DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def documented_receiver() -> tuple[str, Callable[[bytes, dict[str, str]], int]]:
    """The documented secret and the ``handle`` of the Python block that uses the
    reference library, run as a receiver pastes it."""
    text = SECURITY_DOC.read_text()
    blocks: list[str] = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    [block] = [b for b in blocks if "standardwebhooks" in b]
    namespace: dict[str, Any] = {}
    exec(block, namespace)
    [secret] = set(re.findall(r"whsec_[A-Za-z0-9+/=]{40,}", block))
    return secret, namespace["handle"]


def test_the_documented_receiver_accepts_taskhubs_requests_and_refuses_the_rest() -> None:
    secret, handle = documented_receiver()
    body = b'{"n": 1}'
    headers = signed_headers([secret], "0b5f9d5e-6a2c-5e47-8f5a-1c2d3e4f5a6b", now_s(), body)
    assert handle(body, headers) == 204
    assert handle(b'{"n": 2}', headers) == 400
    assert handle(body, signed_headers([new_secret()], "x", now_s(), body)) == 400
    assert handle(body, signed_headers([secret], "x", now_s() - 600, body)) == 400


def test_the_documented_example_headers_are_what_taskhub_sends() -> None:
    secret, _handle = documented_receiver()
    text = SECURITY_DOC.read_text()
    msg_id = re.search(r"^webhook-id: (\S+)$", text, flags=re.MULTILINE)
    stamp = re.search(r"^webhook-timestamp: (\d+)$", text, flags=re.MULTILINE)
    shown = re.search(r"^webhook-signature: (\S+)$", text, flags=re.MULTILINE)
    assert msg_id and stamp and shown
    assert sign([secret], msg_id[1], int(stamp[1]), b'{"n": 1}') == shown[1]
