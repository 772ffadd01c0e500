"""A task's ``overlap`` through the API, the console and the CLI: set, shown (``allow``
included), changed, and refused naming the field with nothing changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from tests.support.api import T0, Api, dump, new_key
from tests.support.cli import Cli
from tests.support.console import form_of, signed_in_client


@pytest.fixture
def api(engine: Engine) -> Api:
    return Api(engine, T0)


def test_overlap_is_set_shown_patched_and_refused(api: Api, engine: Engine) -> None:
    plain = api.task("plain")
    assert plain["overlap"] == "allow"
    task = api.task("guarded", overlap="buffer_one")
    assert task["overlap"] == "buffer_one"
    assert api.a.get(f"/v1/tasks/{task['id']}").json()["overlap"] == "buffer_one"
    patched = api.a.patch(f"/v1/tasks/{task['id']}", json={"overlap": "skip"}).json()
    assert patched["overlap"] == "skip"
    before = dump(engine)
    for bad in ("sometimes", "SKIP", 1, ["skip"]):
        refused = api.a.patch(f"/v1/tasks/{task['id']}", json={"overlap": bad})
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.json()["error"]["field"] == "overlap"
    created = api.a.post("/v1/tasks", json=api_body("new", overlap="sometimes"))
    assert created.status_code == 422
    assert created.json()["error"]["field"] == "overlap"
    assert dump(engine) == before  # nothing changed
    listed = api.a.get("/v1/tasks").json()["items"]
    assert {t["name"]: t["overlap"] for t in listed} == {"plain": "allow", "guarded": "skip"}
    schema = api.a.get("/openapi.json").json()["components"]["schemas"]
    assert schema["OverlapPolicy"]["enum"] == ["allow", "skip", "buffer_one"]
    assert "overlap" in schema["Task"]["required"]


def api_body(name: str, **fields: object) -> dict[str, object]:
    return {
        "name": name,
        "schedule": {"interval_seconds": 60},
        "target": {"url": "http://x.io/hook"},
        **fields,
    }


def test_the_console_shows_and_edits_overlap(api: Api, engine: Engine) -> None:
    task = api.task("console", overlap="skip")
    browser = signed_in_client(api.a.app, new_key(engine, "acme"))
    page = browser.get(f"/ui/tasks/{task['id']}")
    assert page.status_code == 200
    assert "<dt>Overlap</dt><dd><code>skip</code></dd>" in page.text
    form = form_of(browser.get(f"/ui/tasks/{task['id']}/edit").text).values
    assert form["overlap"] == "skip"
    saved = browser.post(
        f"/ui/tasks/{task['id']}/edit",
        data=form | {"overlap": "buffer_one"},
        follow_redirects=False,
    )
    assert saved.status_code == 303, saved.text
    assert api.a.get(f"/v1/tasks/{task['id']}").json()["overlap"] == "buffer_one"
    new = form_of(browser.get("/ui/tasks/new").text).values
    assert new["overlap"] == "allow"


def test_the_cli_shows_overlap(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli("db", "upgrade")
    definition = tmp_path / "task.json"
    definition.write_text(json.dumps(api_body("cli", overlap="buffer_one")))
    added = cli.json("task", "add", str(definition))
    assert added["overlap"] == "buffer_one"
    shown = cli("task", "show", added["id"]).stdout
    assert "overlap:" in shown and "buffer_one" in shown
    definition.write_text(json.dumps(api_body("cli-default")))
    plain = cli.json("task", "add", str(definition))
    assert "allow" in cli("task", "show", plain["id"]).stdout.split("overlap:")[1].split()[0]
    definition.write_text(json.dumps(api_body("cli-bad", overlap="sometimes")))
    refused = cli("task", "add", str(definition), expect=2)
    assert "overlap" in refused.stderr
