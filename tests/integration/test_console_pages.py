"""The console's overview, dead letters and signing secrets, through the app on both
databases: what each page shows a signed-in tenant (and never another's), and what its
buttons change (and nothing without the session's anti-forgery token)."""

from __future__ import annotations

import base64
import html
import re
import uuid
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from taskhub.db.models import executions, signing_secrets
from tests.support.api import T0, Api, dump
from tests.support.console import csrf_of, signed_in_client
from tests.support.engine import make_dead


def key_of(api_client: TestClient) -> str:
    """The API key an :class:`Api` client sends."""
    return str(api_client.headers["Authorization"]).removeprefix("Bearer ")


def browsers(api: Api) -> tuple[TestClient, TestClient]:
    """Tenant A's and tenant B's signed-in console sessions."""
    return (
        signed_in_client(api.a.app, key_of(api.a)),
        signed_in_client(api.b.app, key_of(api.b)),
    )


def settle(engine: Engine, execution_id: int, status: str, lag_s: float) -> None:
    """An execution ended with ``status``, its first attempt ``lag_s`` after its due time."""
    with engine.begin() as conn:
        due = conn.execute(
            sa.select(executions.c.scheduled_for).where(executions.c.id == execution_id)
        ).scalar_one()
        conn.execute(
            sa.update(executions)
            .where(executions.c.id == execution_id)
            .values(
                status=status,
                attempts=1,
                next_attempt_at=None,
                started_at=due + timedelta(seconds=lag_s),
                finished_at=due + timedelta(seconds=lag_s + 1),
            )
        )


def run_now(client: TestClient, task_id: str) -> int:
    response = client.post(f"/v1/tasks/{task_id}/run")
    assert response.status_code == 202, response.text
    execution_id: int = response.json()["id"]
    return execution_id


def figure(page: str, name: str) -> str:
    """The big figure of an overview card, as shown."""
    found = re.search(rf'id="figure-{name}".*?<p class="figure">(.*?)</p>', page, re.S)
    assert found is not None, name
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


def card(page: str, name: str) -> str:
    found = re.search(rf'id="figure-{name}"(.*?)</div>', page, re.S)
    assert found is not None, name
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(1))).split())


def dead(api: Api, name: str, tags: dict[str, str] | None = None) -> tuple[str, int]:
    """A task of tenant A (with ``tags``) and one dead letter of it: (task id, execution id)."""
    task = api.task(name, retry={"max_attempts": 1}, tags=tags or {})
    execution_id = run_now(api.a, task["id"])
    make_dead(api.engine, execution_id)
    return task["id"], execution_id


def status_of(engine: Engine, execution_id: int) -> str:
    with engine.connect() as conn:
        status: str = conn.execute(
            sa.select(executions.c.status).where(executions.c.id == execution_id)
        ).scalar_one()
    return status


def post(browser: TestClient, path: str, page: str, **fields: Any) -> Any:
    """Submit a form of ``page`` (with its csrf token) without following the redirect."""
    return browser.post(path, data={"csrf_token": csrf_of(page), **fields}, follow_redirects=False)


# --- the overview ----------------------------------------------------------------------


def test_the_overview_counts_the_tenants_last_hour_and_never_anothers(engine: Engine) -> None:
    api = Api(engine, T0)
    busy = api.task("busy")
    for status, lag_s in (("succeeded", 2), ("succeeded", 4), ("failed", 6), ("dead", 100)):
        settle(engine, run_now(api.a, busy["id"]), status, lag_s)
    paused = api.task("paused")
    assert api.a.post(f"/v1/tasks/{paused['id']}/pause", json={}).status_code == 200
    api.task("soon", schedule={"at": (T0 + timedelta(minutes=1)).isoformat()})
    theirs = api.b.post(
        "/v1/tasks",
        json={
            "name": "theirs",
            "schedule": {"interval_seconds": 60},
            "target": {"url": "https://example.com/b"},
        },
    ).json()
    for _ in range(3):
        settle(engine, run_now(api.b, theirs["id"]), "succeeded", 50)
    mine, other = browsers(api)
    # Ten minutes on, with no tick: the first occurrences of "busy" (due at once) and of
    # "soon" are due and unclaimed; the paused task's is not due.
    api.clock.now = T0 + timedelta(minutes=10)

    page = mine.get("/ui/").text
    assert figure(page, "fired") == "4"
    assert figure(page, "success") == "50.0 %"
    assert figure(page, "lag") == "p50 4.0 s" and "p99 100.0 s" in card(page, "lag")
    assert figure(page, "backlog") == "2" and "oldest due 10 min ago" in card(page, "backlog")
    assert figure(page, "dead") == "1"
    assert figure(page, "paused") == "1"
    # Refreshed in place, and every chart has a text alternative.
    assert re.search(r'<section id="overview-figures" data-refresh-seconds="15"', page)
    labels = re.findall(r'<svg [^>]*role="img" aria-label="([^"]+)"', page)
    assert len(labels) == 6
    assert any(label.startswith("Occurrences fired per 5 minutes") for label in labels)

    theirs_page = other.get("/ui/").text
    assert figure(theirs_page, "fired") == "3"
    assert figure(theirs_page, "success") == "100.0 %"
    assert figure(theirs_page, "lag") == "p50 50.0 s"
    assert figure(theirs_page, "dead") == "0" and figure(theirs_page, "paused") == "0"
    assert figure(theirs_page, "backlog") == "1"


def test_the_overview_needs_a_session(engine: Engine) -> None:
    api = Api(engine, T0)
    response = TestClient(api.a.app).get("/ui/", follow_redirects=False)
    assert response.status_code == 303 and "/ui/sign-in" in response.headers["location"]


# --- dead letters ------------------------------------------------------------------------


def test_dead_letters_are_listed_filtered_and_redriven_one_at_a_time(engine: Engine) -> None:
    api = Api(engine, T0)
    ops_task, ops_dead = dead(api, "ops-<b>hook</b>", {"team": "ops"})
    _dev_task, dev_dead = dead(api, "dev-hook", {"team": "dev"})
    mine, other = browsers(api)

    page = mine.get("/ui/dead-letters").text
    assert "ops-&lt;b&gt;hook&lt;/b&gt;" in page and "dev-hook" in page
    assert "HTTP 503" in page and page.count(">Redrive</button>") == 2
    only_ops = mine.get("/ui/dead-letters", params={"tag": "team:ops"}).text
    assert "ops-&lt;b&gt;hook" in only_ops and "dev-hook" not in only_ops
    by_task = mine.get("/ui/dead-letters", params={"task_id": ops_task}).text
    assert "ops-&lt;b&gt;hook" in by_task and "dev-hook" not in by_task
    before = mine.get("/ui/dead-letters", params={"until": T0.isoformat()}).text
    assert "No dead letters match these filters" in before
    first_page = mine.get("/ui/dead-letters", params={"limit": "1"}).text
    assert "dev-hook" in first_page and "ops-" not in first_page  # newest first
    next_link = re.search(r'href="([^"]+)">Next page</a>', first_page)
    assert next_link is not None
    second_page = mine.get(html.unescape(next_link.group(1))).text
    assert "ops-&lt;b&gt;hook" in second_page and "dev-hook" not in second_page
    assert ">Next page<" not in second_page
    assert mine.get("/ui/dead-letters", params={"limit": "0"}).status_code == 422
    refused = mine.get("/ui/dead-letters", params={"since": "yesterday"})
    assert refused.status_code == 422
    assert 'aria-invalid="true" aria-describedby="since-error"' in refused.text
    assert 'id="since-error"' in refused.text

    # Tenant B sees none of it and cannot redrive it.
    theirs = other.get("/ui/dead-letters").text
    assert "No dead letters" in theirs and "hook" not in theirs
    assert post(other, f"/ui/dead-letters/{ops_dead}/redrive", theirs).status_code == 404
    assert status_of(engine, ops_dead) == "dead"

    answer = post(mine, f"/ui/dead-letters/{ops_dead}/redrive", page)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/dead-letters?notice=redriven"
    assert status_of(engine, ops_dead) == "queued" and status_of(engine, dev_dead) == "dead"
    assert api.ticks  # asked for a tick, as the API's redrive does
    after = mine.get(answer.headers["location"]).text
    assert "Dead letter redriven." in after and "ops-&lt;b&gt;hook" not in after
    # Not dead any more: a second redrive is a conflict, shown as a page.
    again = post(mine, f"/ui/dead-letters/{ops_dead}/redrive", page)
    assert again.status_code == 409


def test_redriving_all_matching_shows_how_many_first(engine: Engine) -> None:
    api = Api(engine, T0)
    ops = [dead(api, f"ops-{i}", {"team": "ops"})[1] for i in range(3)]
    _dev_task, dev_dead = dead(api, "dev", {"team": "dev"})
    mine, other = browsers(api)

    listing = mine.get("/ui/dead-letters", params={"tag": "team:ops"}).text
    link = re.search(r'href="([^"]+)">Redrive all matching</a>', listing)
    assert link is not None and html.unescape(link.group(1)) == (
        "/ui/dead-letters/redrive?tag=team%3Aops"
    )
    confirm = mine.get(html.unescape(link.group(1))).text
    assert "<strong>3</strong> dead letters match" in confirm
    assert all(status_of(engine, e) == "dead" for e in ops)  # nothing changed by asking
    # Tenant B's count for the same filter is its own: none.
    assert (
        "<strong>0</strong> dead letters match"
        in other.get("/ui/dead-letters/redrive", params={"tag": "team:ops"}).text
    )

    answer = post(mine, "/ui/dead-letters/redrive", confirm, tag="team:ops")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/dead-letters?notice=redriven-all"
    assert all(status_of(engine, e) == "queued" for e in ops)
    assert status_of(engine, dev_dead) == "dead"
    assert api.ticks

    # No filter at all: every dead letter of the tenant, counted first.
    everything = mine.get("/ui/dead-letters/redrive").text
    assert "<strong>1</strong> dead letter matches" in everything
    assert "every dead letter of the tenant" in everything


def test_a_bad_redrive_filter_is_refused_before_anything_changes(engine: Engine) -> None:
    api = Api(engine, T0)
    _task, execution_id = dead(api, "d", {"team": "ops"})
    mine, _other = browsers(api)
    page = mine.get("/ui/dead-letters").text
    asked = mine.get("/ui/dead-letters/redrive", params={"since": "soon"})
    refused = post(mine, "/ui/dead-letters/redrive", page, since="soon")
    for answer in (asked, refused):
        # The filter form again, the message beside the field it names.
        assert answer.status_code == 422
        assert 'aria-invalid="true" aria-describedby="since-error"' in answer.text
        assert re.search(r'id="since-error" class="field-error">not an ISO 8601', answer.text)
        assert ">Redrive all matching<" not in answer.text
    twice = post(mine, "/ui/dead-letters/redrive", page, tag=["team:ops", "team:dev"])
    assert twice.status_code == 422 and 'id="tag-error"' in twice.text
    missing = post(mine, "/ui/dead-letters/redrive", page, task_id=str(uuid.uuid4()))
    assert missing.status_code == 404 and 'id="task_id-error"' in missing.text
    assert status_of(engine, execution_id) == "dead"


# --- signing secrets ---------------------------------------------------------------------


def new_secret_of(page: str) -> str:
    found = re.search(r'id="new-secret"[^>]*value="([^"]+)"', page)
    assert found is not None
    return html.unescape(found.group(1))


def test_a_signing_secret_is_shown_once_and_revoked(engine: Engine) -> None:
    api = Api(engine, T0)
    mine, other = browsers(api)
    page = mine.get("/ui/signing-secrets").text
    assert "No signing secrets yet" in page

    created = post(mine, "/ui/signing-secrets", page)
    assert created.status_code == 200
    assert created.headers["cache-control"] == "no-store"
    secret = new_secret_of(created.text)
    assert secret.startswith("whsec_") and "will not be shown again" in created.text

    listing = mine.get("/ui/signing-secrets").text
    assert secret not in listing and secret[6:] not in listing
    assert f"whsec_…{secret[-4:]}" in listing and ">Revoke</button>" in listing
    theirs = other.get("/ui/signing-secrets").text
    assert secret[-4:] not in theirs and "No signing secrets yet" in theirs

    with engine.connect() as conn:
        [secret_id] = conn.execute(sa.select(signing_secrets.c.id)).scalars().all()
    # Tenant B cannot revoke it.
    assert post(other, f"/ui/signing-secrets/{secret_id}/revoke", theirs).status_code == 404
    answer = post(mine, f"/ui/signing-secrets/{secret_id}/revoke", listing)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/signing-secrets?notice=secret-revoked"
    revoked = mine.get(answer.headers["location"]).text
    assert "Signing secret revoked." in revoked and ">Revoke</button>" not in revoked
    with engine.connect() as conn:
        assert conn.execute(sa.select(signing_secrets.c.revoked_at)).scalar_one() is not None


def test_a_third_active_secret_is_refused_on_the_page(engine: Engine) -> None:
    api = Api(engine, T0)
    mine, _other = browsers(api)
    page = mine.get("/ui/signing-secrets").text
    for _ in range(2):
        assert post(mine, "/ui/signing-secrets", page).status_code == 200
    third = post(mine, "/ui/signing-secrets", page)
    assert third.status_code == 409 and "revoke the old one first" in third.text
    assert 'id="new-secret"' not in third.text


def test_a_standard_webhooks_secret_is_created_from_the_scheme_choice(engine: Engine) -> None:
    api = Api(engine, T0)
    mine, _other = browsers(api)
    page = mine.get("/ui/signing-secrets").text
    assert '<label for="scheme">Scheme</label>' in page
    assert '<option value="taskhub" selected>' in page
    assert '<option value="standard-webhooks">' in page

    created = post(mine, "/ui/signing-secrets", page, scheme="standard-webhooks")
    assert created.status_code == 200
    secret = new_secret_of(created.text)
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert "Scheme <code>standard-webhooks</code>" in created.text
    assert post(mine, "/ui/signing-secrets", page).status_code == 200  # taskhub, the default
    listing = mine.get("/ui/signing-secrets").text
    assert '<th scope="col">Scheme</th>' in listing
    assert re.search(r"<td>standard-webhooks</td>", listing)
    assert re.search(r"<td>taskhub</td>", listing)
    assert secret not in listing

    with engine.connect() as conn:
        before = conn.execute(sa.select(sa.func.count()).select_from(signing_secrets)).scalar()
    refused = post(mine, "/ui/signing-secrets", page, scheme="hmac-md5")
    assert refused.status_code == 422
    assert "Scheme: must be one of taskhub, standard-webhooks" in html.unescape(refused.text)
    assert 'id="new-secret"' not in refused.text
    with engine.connect() as conn:
        after = conn.execute(sa.select(sa.func.count()).select_from(signing_secrets)).scalar()
    assert after == before == 2


# --- anti-forgery ------------------------------------------------------------------------


def test_a_change_without_the_csrf_token_is_refused_and_changes_nothing(engine: Engine) -> None:
    api = Api(engine, T0)
    _task, execution_id = dead(api, "d")
    mine, other = browsers(api)
    assert post(mine, "/ui/signing-secrets", mine.get("/ui/").text).status_code == 200
    with engine.connect() as conn:
        [secret_id] = conn.execute(sa.select(signing_secrets.c.id)).scalars().all()
    before = dump(engine)
    for path in (
        f"/ui/dead-letters/{execution_id}/redrive",
        "/ui/dead-letters/redrive",
        "/ui/signing-secrets",
        f"/ui/signing-secrets/{secret_id}/revoke",
    ):
        assert mine.post(path, follow_redirects=False).status_code == 403, path
        # Another session's token is not this one's.
        forged = post(mine, path, other.get("/ui/").text)
        assert forged.status_code == 403, path
    assert dump(engine) == before
    with engine.connect() as conn:
        [secret] = conn.execute(sa.select(signing_secrets)).mappings().all()
    assert secret["id"] == secret_id and secret["revoked_at"] is None
