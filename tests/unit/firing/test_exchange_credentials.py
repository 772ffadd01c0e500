"""Credentials at send time (``taskhub.engine.exchange``): unsealed just before the
attempt, signed then, and never echoed back into an excerpt."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from taskhub.core.messages import TriggerRequest
from taskhub.core.sealing import Sealer, generate_key, sealer_for
from taskhub.core.signing import new_secret, verify
from taskhub.core.standard_webhooks import new_secret as webhook_secret
from taskhub.engine import exchange
from tests.support.messages import req
from tests.support.processes import free_port
from tests.unit.firing.support import (
    OPEN,
    Target,
    fire_one,
    make_settings,
)

# --------------------------------------------------------------------------- credentials

SEKRIT = "Bearer sekrit-0123456789-wxyz"


def test_sealed_headers_travel_sealed_and_are_sent_unsealed(target: Target) -> None:
    sealer = sealer_for(OPEN)
    token = uuid.uuid4().hex
    request = req(
        f"http://127.0.0.1:{target.port}/echo/{token}",
        headers={"X-Team": "billing"},
        sealed_headers=sealer.seal_json({"Authorization": SEKRIT}),
    )
    message = json.dumps(request.to_message())
    assert "sekrit" not in message
    outcome = fire_one(TriggerRequest.from_message(json.loads(message)))
    assert outcome.http_status == 200
    [seen] = target.hits(token)
    headers = dict(seen.headers)
    assert headers["Authorization"] == SEKRIT and headers["X-Team"] == "billing"


@pytest.mark.parametrize("pad", [0, 500, 900])
def test_an_echoed_credential_never_reaches_the_excerpt(target: Target, pad: int) -> None:
    """Wherever the echo puts it, even across the excerpt's cut, no credential value of
    the request (sealed headers, a plain header named like one, signing secrets) is in
    the outcome: it goes to the result backend, the database and the API from here."""
    signing_secret = new_secret()
    sealer = sealer_for(OPEN)
    sealed = {"Authorization": SEKRIT, "X-Access-Token": "xat-0123456789abcdef"}
    request = req(
        f"http://127.0.0.1:{target.port}/mirror?pad={pad}",
        headers={"X-Team": "billing", "Private-Token": "glpat-legacy-plain-0123"},
        sealed_headers=sealer.seal_json(sealed),
        sealed_signing_secrets=(sealer.seal(signing_secret),),
    )
    outcome = fire_one(request)
    assert outcome.http_status == 200
    excerpt = outcome.response_excerpt
    assert excerpt is not None and len(excerpt.encode()) <= exchange.EXCERPT_BYTES
    message = json.dumps(outcome.to_message())
    for value in ("sekrit-0123456789-wxyz", "xat-0123", "glpat-legacy", signing_secret[6:14]):
        assert value not in message
    if pad < 400:  # the whole echo fits: the rest of it is kept as it was
        assert '"Authorization": "[redacted]"' in excerpt
        assert '"X-Team": "billing"' in excerpt


@pytest.mark.parametrize("before_cut", [1, 4, 8, 12, 20, 28, 29, 30])
def test_a_credential_cut_by_the_excerpt_leaves_no_part_of_itself(
    target: Target, before_cut: int
) -> None:
    """The value starts ``before_cut`` bytes before the excerpt's end."""
    pad = exchange.EXCERPT_BYTES - before_cut
    request = req(
        f"http://127.0.0.1:{target.port}/mirror?pad={pad}&only=Authorization",
        sealed_headers=sealer_for(OPEN).seal_json({"Authorization": SEKRIT}),
    )
    excerpt = fire_one(request).response_excerpt
    assert excerpt is not None and excerpt.startswith("." * pad)
    shown = excerpt[pad:]
    assert len(shown) <= before_cut
    credential = SEKRIT.removeprefix("Bearer ")
    assert not any(credential[:n] in shown for n in range(4, len(credential) + 1)), shown


def test_a_credential_cut_by_the_response_cap_leaves_no_part_of_itself(target: Target) -> None:
    settings = make_settings(TASKHUB_MAX_RESPONSE_BYTES="110")
    request = req(
        f"http://127.0.0.1:{target.port}/mirror?pad=100&only=Authorization",
        sealed_headers=sealer_for(OPEN).seal_json({"Authorization": SEKRIT}),
    )
    excerpt = fire_one(request, settings).response_excerpt
    assert excerpt == "." * 100 + "[redacted]"  # "Bearer sek", read up to the cap


def test_credentials_that_cannot_be_unsealed_fail_clearly_without_sending(
    target: Target,
) -> None:
    foreign = Sealer((generate_key(),), "elsewhere").seal_json({"Authorization": SEKRIT})
    token = uuid.uuid4().hex
    outcome = fire_one(req(f"http://127.0.0.1:{target.port}/echo/{token}", sealed_headers=foreign))
    assert outcome.error_kind == "configuration"
    assert outcome.error is not None and "TASKHUB_ENCRYPTION_KEYS" in outcome.error
    assert "sekrit" not in outcome.error and foreign not in outcome.error
    assert target.hits(token) == []


def test_errors_never_echo_sealed_credentials() -> None:
    sealed = sealer_for(OPEN).seal_json({"Authorization": SEKRIT, "Cookie": "session=sekrit"})
    outcome = fire_one(req(f"http://127.0.0.1:{free_port()}/", sealed_headers=sealed))
    assert outcome.error_kind == "connection"
    assert outcome.error is not None and "sekrit" not in outcome.error


def test_the_signature_is_made_at_send_time_over_the_exact_body(target: Target) -> None:
    secret = new_secret()
    token = uuid.uuid4().hex
    body = '{"kind": "nightly", "é": 1}'
    request = req(
        f"http://127.0.0.1:{target.port}/echo/{token}",
        method="POST",
        body=body,
        headers={"X-Taskhub-Signature": "t=1,v1=00"},  # a task's own cannot forge it
        sealed_signing_secrets=(sealer_for(OPEN).seal(secret),),
    )
    assert secret not in json.dumps(request.to_message())
    before = int(time.time())
    outcome = fire_one(TriggerRequest.from_message(request.to_message()))
    after = int(time.time())
    assert outcome.http_status == 200
    [seen] = target.hits(token)
    signatures = [v for k, v in seen.headers if k.lower() == "x-taskhub-signature"]
    assert len(signatures) == 1
    assert verify(signatures[0], seen.body, [secret])
    assert seen.body == body.encode()
    assert before <= int(signatures[0].split(",")[0][2:]) <= after


def test_no_signing_secrets_no_signature(target: Target) -> None:
    token = uuid.uuid4().hex
    fire_one(req(f"http://127.0.0.1:{target.port}/echo/{token}"))
    [seen] = target.hits(token)
    assert all(k.lower() != "x-taskhub-signature" for k, _ in seen.headers)


# --------------------------------------------------------------------------- Standard Webhooks


def _sent(seen_headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in seen_headers if k.lower() == name.lower()]


def test_standard_webhooks_headers_verify_with_the_reference_library(target: Target) -> None:
    """What the attempt sent, as the target received it, verified by ``standardwebhooks``:
    the id is the occurrence's Idempotency-Key, the timestamp the send time, one ``v1``
    per secret (a rotation), and a task's own ``webhook-*`` headers cannot forge them."""
    old, new = webhook_secret(), webhook_secret()
    sealer = sealer_for(OPEN)
    token = uuid.uuid4().hex
    body = '{"kind": "nightly", "é": 1}'
    request = req(
        f"http://127.0.0.1:{target.port}/echo/{token}",
        method="POST",
        body=body,
        headers={"Webhook-Signature": "v1,Zm9yZ2Vk", "WEBHOOK-ID": "forged"},
        sealed_webhook_secrets=(sealer.seal(old), sealer.seal(new)),
    )
    message = json.dumps(request.to_message())
    assert old not in message and new not in message
    before = int(time.time())
    outcome = fire_one(TriggerRequest.from_message(json.loads(message)))
    after = int(time.time())
    assert outcome.http_status == 200, outcome.error
    [seen] = target.hits(token)
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        assert len(_sent(seen.headers, name)) == 1, name
    headers = dict(seen.headers)
    assert (
        headers["webhook-id"]
        == request.idempotency_key
        == _sent(seen.headers, "Idempotency-Key")[0]
    )
    assert before <= int(headers["webhook-timestamp"]) <= after
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert Webhook(old).verify(seen.body, headers) == {"kind": "nightly", "é": 1}
    assert Webhook(new).verify(seen.body, headers) == {"kind": "nightly", "é": 1}
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(seen.body + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(webhook_secret()).verify(seen.body, headers)
    assert _sent(seen.headers, "X-Taskhub-Signature") == []  # no taskhub-scheme secret


def test_both_schemes_sign_side_by_side(target: Target) -> None:
    taskhub_secret, standard = new_secret(), webhook_secret()
    sealer = sealer_for(OPEN)
    token = uuid.uuid4().hex
    request = req(
        f"http://127.0.0.1:{target.port}/echo/{token}",
        method="PUT",
        body="[1, 2]",
        sealed_signing_secrets=(sealer.seal(taskhub_secret),),
        sealed_webhook_secrets=(sealer.seal(standard),),
    )
    assert fire_one(request).http_status == 200
    [seen] = target.hits(token)
    headers = dict(seen.headers)
    assert verify(headers["X-Taskhub-Signature"], seen.body, [taskhub_secret])
    assert Webhook(standard).verify(seen.body, headers) == [1, 2]


def test_a_task_of_a_tenant_without_standard_secrets_keeps_its_own_webhook_headers(
    target: Target,
) -> None:
    """Forwarding to a receiver that checks another sender's Standard Webhooks headers is
    the task's business: taskhub touches them only when it signs with that scheme."""
    token = uuid.uuid4().hex
    own = {"webhook-id": "msg_1", "webhook-timestamp": "1", "webhook-signature": "v1,abc"}
    assert fire_one(req(f"http://127.0.0.1:{target.port}/echo/{token}", headers=own)).http_status
    [seen] = target.hits(token)
    assert {k: v for k, v in seen.headers if k.lower().startswith("webhook-")} == own


def test_an_echoed_standard_webhooks_secret_never_reaches_the_excerpt(target: Target) -> None:
    secret = webhook_secret()
    request = req(
        f"http://127.0.0.1:{target.port}/mirror?pad=0",
        headers={"X-Leak": secret},
        sealed_webhook_secrets=(sealer_for(OPEN).seal(secret),),
    )
    outcome = fire_one(request)
    assert outcome.http_status == 200
    assert secret[6:20] not in json.dumps(outcome.to_message())
