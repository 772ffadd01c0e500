"""Skipped occurrences and exclusion calendars, on SQLite and on PostgreSQL: the API
(calendars, skip and unskip, the task's ``exclude_calendars``, the preview's flags and
``next_execution_time``, refusals that store nothing, tenants kept apart) and the claim
(an excluded occurrence is never written down, the next one is)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine

from taskhub.core import limits, settings
from taskhub.core.definitions import parse_definition
from taskhub.core.errors import ValidationError
from taskhub.db import engines, exclusion_queries, schema, task_queries
from taskhub.db.models import calendars, executions, occurrence_skips
from taskhub.engine import discovery
from taskhub.service import exclusions, task_service
from tests.support.api import T0, Api, dump, task_body

DAILY = {"cron": "0 9 * * *", "timezone": "UTC"}  # T0 is 2030-01-07 00:00 UTC


@pytest.fixture
def api(engine: Engine) -> Api:
    return Api(engine, T0)


def everything(engine: Engine) -> dict[str, Any]:
    """What a refusal must leave as it was: tasks, executions, calendars and skips."""
    stored: dict[str, Any] = dump(engine)
    with engine.connect() as conn:
        for table in (calendars, occurrence_skips):
            stored[table.name] = [
                dict(r) for r in conn.execute(sa.select(table).order_by(*table.c)).mappings()
            ]
    return stored


def calendar(api: Api, name: str, dates: list[str], timezone: str = "UTC") -> dict[str, Any]:
    response = api.a.post(
        "/v1/calendars", json={"name": name, "timezone": timezone, "dates": dates}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


# --- calendars ------------------------------------------------------------------------


def test_calendars_are_created_listed_shown_changed_and_deleted(api: Api) -> None:
    response = api.a.post(
        "/v1/calendars",
        json={
            "name": "tw-holidays",
            "timezone": "Asia/Taipei",
            "dates": ["2030-02-01", "2030-01-01"],
        },
    )
    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/v1/calendars/tw-holidays"
    made = response.json()
    assert (made["name"], made["timezone"], made["dates"]) == (
        "tw-holidays",
        "Asia/Taipei",
        ["2030-01-01", "2030-02-01"],
    )
    assert api.a.get("/v1/calendars/tw-holidays").json() == made
    assert api.a.get("/v1/calendars").json() == {"items": [made]}
    changed = api.a.patch("/v1/calendars/tw-holidays", json={"dates": ["2030-03-01"]}).json()
    assert (changed["timezone"], changed["dates"]) == ("Asia/Taipei", ["2030-03-01"])
    changed = api.a.patch("/v1/calendars/tw-holidays", json={"timezone": "UTC"}).json()
    assert (changed["timezone"], changed["dates"]) == ("UTC", ["2030-03-01"])
    assert api.a.delete("/v1/calendars/tw-holidays").status_code == 204
    assert api.a.get("/v1/calendars/tw-holidays").status_code == 404
    assert api.a.get("/v1/calendars").json() == {"items": []}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Bad Name", "timezone": "UTC", "dates": []}, "name"),
        ({"timezone": "UTC", "dates": []}, "name"),
        ({"name": "x", "timezone": "Mars/Olympus", "dates": []}, "timezone"),
        ({"name": "x", "dates": []}, "timezone"),
        ({"name": "x", "timezone": "UTC", "dates": ["2030-01-01", "2030-13-01"]}, "dates[1]"),
        ({"name": "x", "timezone": "UTC", "dates": "2030-01-01"}, "dates"),
        (
            {
                "name": "x",
                "timezone": "UTC",
                "dates": ["2030-01-01"] * (limits.MAX_CALENDAR_DATES + 1),
            },
            "dates",
        ),
        ({"name": "x", "timezone": "UTC", "dates": [], "colour": "red"}, "colour"),
    ],
)
def test_a_bad_calendar_is_refused_naming_the_field_and_stores_nothing(
    api: Api, body: dict[str, Any], field: str
) -> None:
    before = everything(api.engine)
    assert api.error(api.a.post("/v1/calendars", json=body), 422)["field"] == field
    assert everything(api.engine) == before


def test_calendar_names_are_unique_per_tenant_and_tenants_are_kept_apart(api: Api) -> None:
    calendar(api, "holidays", ["2030-01-01"])
    before = everything(api.engine)
    again = api.a.post("/v1/calendars", json={"name": "holidays", "timezone": "UTC"})
    assert api.error(again, 409)["field"] == "name"
    assert everything(api.engine) == before
    for response in (
        api.b.get("/v1/calendars/holidays"),
        api.b.patch("/v1/calendars/holidays", json={"dates": []}),
        api.b.delete("/v1/calendars/holidays"),
    ):
        assert api.error(response, 404)["code"] == "not_found"
    assert everything(api.engine) == before
    assert api.b.get("/v1/calendars").json() == {"items": []}
    # The other tenant may use the name, and may not name tenant A's calendar in a task.
    refused = api.b.post("/v1/tasks", json=task_body("t") | {"exclude_calendars": ["holidays"]})
    assert api.error(refused, 422)["field"] == "exclude_calendars"
    assert (
        api.b.post("/v1/calendars", json={"name": "holidays", "timezone": "UTC"}).status_code == 201
    )


def test_every_calendar_route_needs_a_key_and_is_in_the_openapi_document(api: Api) -> None:
    calendar(api, "holidays", [])
    before = everything(api.engine)
    for method in ("GET", "PATCH", "DELETE"):
        response = api.anonymous.request(method, "/v1/calendars/holidays", content=b"{}")
        assert api.error(response, 401)["code"] == "unauthorized"
    assert everything(api.engine) == before
    document = api.anonymous.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert {"Calendar", "CalendarCreate", "CalendarPatch", "SkipRequest", "Skip"} <= set(schemas)
    assert set(schemas["FireTime"]["properties"]) == {"utc", "local", "skipped", "reason"}
    one = document["paths"]["/v1/calendars/{name}"]
    assert {"get", "patch", "delete"} <= set(one)
    assert "409" in one["delete"]["responses"] and "404" in one["patch"]["responses"]
    assert "exclude_calendars" in schemas["TaskCreate"]["properties"]


def test_a_calendar_patch_that_renames_or_is_bad_changes_nothing(api: Api) -> None:
    calendar(api, "holidays", ["2030-01-01"])
    before = everything(api.engine)
    for body, field in (
        ({"name": "other"}, "name"),
        ({"timezone": "Nowhere/Zone"}, "timezone"),
        ({"dates": ["2030-1-1"]}, "dates[0]"),
    ):
        response = api.a.patch("/v1/calendars/holidays", json=body)
        assert api.error(response, 422)["field"] == field
    assert everything(api.engine) == before


# --- a task's exclude_calendars -------------------------------------------------------


def test_a_task_does_not_fire_on_its_calendars_dates(api: Api) -> None:
    calendar(api, "holidays", ["2030-01-07"])
    task = api.task("daily", schedule=DAILY, exclude_calendars=["holidays"])
    assert task["exclude_calendars"] == ["holidays"]
    assert task["next_execution_time"] == "2030-01-08T09:00:00+00:00"
    preview = api.a.get(f"/v1/tasks/{task['id']}/preview", params={"count": 3}).json()
    assert [(f["utc"], f["skipped"], f.get("reason")) for f in preview["fire_times"]] == [
        ("2030-01-07T09:00:00+00:00", True, "calendar:holidays"),
        ("2030-01-08T09:00:00+00:00", False, None),
        ("2030-01-09T09:00:00+00:00", False, None),
    ]
    # A changed calendar moves the task's next run, as a PATCH of the task would.
    api.a.patch("/v1/calendars/holidays", json={"dates": ["2030-01-07", "2030-01-08"]})
    assert api.a.get(f"/v1/tasks/{task['id']}").json()["next_execution_time"] == (
        "2030-01-09T09:00:00+00:00"
    )
    api.a.patch("/v1/calendars/holidays", json={"dates": []})
    assert api.a.get(f"/v1/tasks/{task['id']}").json()["next_execution_time"] == (
        "2030-01-07T09:00:00+00:00"
    )


def test_a_calendars_date_is_in_its_own_time_zone(api: Api) -> None:
    # 09:00 UTC on 7 January is 17:00 in Taipei: the Taipei date 2030-01-07.
    calendar(api, "tw", ["2030-01-07"], "Asia/Taipei")
    # 20:00 UTC on 7 January is already 8 January in Taipei.
    calendar(api, "tw8", ["2030-01-08"], "Asia/Taipei")
    task = api.task("a", schedule=DAILY, exclude_calendars=["tw"])
    assert task["next_execution_time"] == "2030-01-08T09:00:00+00:00"
    evening = {"cron": "0 20 * * *", "timezone": "UTC"}
    task = api.task("b", schedule=evening, exclude_calendars=["tw8"])
    assert task["next_execution_time"] == "2030-01-08T20:00:00+00:00"


def test_exclude_calendars_is_patched_and_refused_naming_it(api: Api) -> None:
    calendar(api, "holidays", ["2030-01-07"])
    task = api.task("daily", schedule=DAILY)
    assert task["exclude_calendars"] == []
    assert task["next_execution_time"] == "2030-01-07T09:00:00+00:00"
    url = f"/v1/tasks/{task['id']}"
    before = everything(api.engine)
    for value in (["missing"], ["Bad Name"], "holidays", ["holidays"] * 0 + ["x"] * 11):
        response = api.a.patch(url, json={"exclude_calendars": value})
        assert api.error(response, 422)["field"].startswith("exclude_calendars"), value
    refused = api.a.post("/v1/tasks", json=task_body("n") | {"exclude_calendars": ["missing"]})
    assert api.error(refused, 422)["field"] == "exclude_calendars"
    assert everything(api.engine) == before
    patched = api.a.patch(url, json={"exclude_calendars": ["holidays"]}).json()
    assert patched["exclude_calendars"] == ["holidays"]
    assert patched["next_execution_time"] == "2030-01-08T09:00:00+00:00"
    patched = api.a.patch(url, json={"exclude_calendars": []}).json()
    assert patched["next_execution_time"] == "2030-01-07T09:00:00+00:00"


def test_a_calendar_a_task_names_cannot_be_deleted(api: Api) -> None:
    calendar(api, "holidays", ["2030-01-07"])
    task = api.task("payroll", schedule=DAILY, exclude_calendars=["holidays"])
    before = everything(api.engine)
    error = api.error(api.a.delete("/v1/calendars/holidays"), 409)
    assert "payroll" in error["message"] and task["id"] in error["message"]
    assert everything(api.engine) == before
    api.a.patch(f"/v1/tasks/{task['id']}", json={"exclude_calendars": []})
    assert api.a.delete("/v1/calendars/holidays").status_code == 204


# --- skip and unskip ------------------------------------------------------------------


def test_skip_and_unskip_one_occurrence(api: Api) -> None:
    task = api.task("daily", schedule=DAILY)
    url = f"/v1/tasks/{task['id']}"
    skipped = api.a.post(f"{url}/skip", json={"scheduled_for": "2030-01-07T09:00:00Z"})
    assert skipped.status_code == 200, skipped.text
    assert skipped.json() == {
        "task_id": task["id"],
        "scheduled_for": "2030-01-07T09:00:00+00:00",
        "skipped": True,
    }
    assert api.a.get(url).json()["next_execution_time"] == "2030-01-08T09:00:00+00:00"
    preview = api.a.get(f"{url}/preview", params={"count": 2}).json()["fire_times"]
    assert [(f["skipped"], f.get("reason")) for f in preview] == [(True, "skip"), (False, None)]
    # Skipping it again changes nothing.
    again = api.a.post(f"{url}/skip", json={"scheduled_for": "2030-01-07T17:00:00+08:00"})
    assert again.status_code == 200
    unskipped = api.a.post(f"{url}/unskip", json={"scheduled_for": "2030-01-07T09:00:00Z"})
    assert unskipped.json()["skipped"] is False
    assert api.a.get(url).json()["next_execution_time"] == "2030-01-07T09:00:00+00:00"
    not_skipped = api.a.post(f"{url}/unskip", json={"scheduled_for": "2030-01-07T09:00:00Z"})
    assert api.error(not_skipped, 404)["code"] == "not_found"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scheduled_for": "2030-01-07T09:30:00Z"}, "scheduled_for"),  # not an occurrence
        ({"scheduled_for": "2030-01-07T09:00:00"}, "scheduled_for"),  # no offset
        ({"scheduled_for": "tomorrow"}, "scheduled_for"),
        ({}, "scheduled_for"),
        ({"scheduled_for": "2030-01-07T09:00:00Z", "why": "x"}, "why"),
    ],
)
def test_a_bad_skip_is_refused_naming_the_field_and_stores_nothing(
    api: Api, body: dict[str, Any], field: str
) -> None:
    task = api.task("daily", schedule=DAILY)
    before = everything(api.engine)
    for verb in ("skip", "unskip"):
        response = api.a.post(f"/v1/tasks/{task['id']}/{verb}", json=body)
        assert api.error(response, 422)["field"] == field
    assert everything(api.engine) == before


def test_another_tenants_task_cannot_be_skipped(api: Api) -> None:
    task = api.task("daily", schedule=DAILY)
    before = everything(api.engine)
    body = {"scheduled_for": "2030-01-07T09:00:00Z"}
    assert api.error(api.b.post(f"/v1/tasks/{task['id']}/skip", json=body), 404)
    assert api.error(api.b.post(f"/v1/tasks/{task['id']}/unskip", json=body), 404)
    assert everything(api.engine) == before


def test_skipping_the_only_occurrence_of_a_one_time_task_finishes_it(api: Api) -> None:
    task = api.task("once", schedule={"at": "2030-01-08T00:00:00Z"})
    url = f"/v1/tasks/{task['id']}"
    api.a.post(f"{url}/skip", json={"scheduled_for": "2030-01-08T00:00:00Z"})
    shown = api.a.get(url).json()
    assert (shown["next_execution_time"], shown["status"]) == (None, "finished")
    api.a.post(f"{url}/unskip", json={"scheduled_for": "2030-01-08T00:00:00Z"})
    shown = api.a.get(url).json()
    assert (shown["next_execution_time"], shown["status"]) == (
        "2030-01-08T00:00:00+00:00",
        "active",
    )


def test_deleting_a_task_deletes_its_skips(api: Api) -> None:
    task = api.task("daily", schedule=DAILY)
    api.a.post(f"/v1/tasks/{task['id']}/skip", json={"scheduled_for": "2030-01-07T09:00:00Z"})
    assert api.a.delete(f"/v1/tasks/{task['id']}").status_code == 204
    assert everything(api.engine)["occurrence_skips"] == []


# --- the claim ------------------------------------------------------------------------

DEFAULTS = settings.load({})
M = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def add_task(engine: Engine, schedule: dict[str, Any], **extra: Any) -> uuid.UUID:
    created = M - timedelta(seconds=30)
    data = {"name": "t", "schedule": schedule, "target": {"url": "http://x.test/hook"}}
    with engine.begin() as conn:
        return task_service.create_task(
            conn, parse_definition({**data, **extra}, created), created, DEFAULTS
        )


def claimed(engine: Engine, task_id: uuid.UUID) -> list[datetime]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(executions.c.scheduled_for)
            .where(executions.c.task_id == task_id)
            .order_by(executions.c.scheduled_for)
        )
        return [row.scheduled_for for row in rows]


def next_time(engine: Engine, task_id: uuid.UUID) -> datetime | None:
    with engine.connect() as conn:
        row = task_queries.get_task(conn, task_id)
        assert row is not None
        found: datetime | None = row["next_execution_time"]
        return found


def test_a_due_excluded_occurrence_is_not_claimed_and_the_next_one_is(engine: Engine) -> None:
    task_id = add_task(engine, {"cron": "* * * * *"})
    assert next_time(engine, task_id) == M
    # Skipped behind the service's back: the stored next time is due and excluded, and
    # the claim itself must step over it.
    with engine.begin() as conn:
        exclusion_queries.add_skip(conn, task_id, M, M)
        exclusion_queries.add_skip(conn, task_id, M + timedelta(minutes=2), M)
    discovery.run_tick(engine, DEFAULTS, lambda requests: None, lambda: M + timedelta(seconds=5))
    # Due by the tick and its minute ahead: 12:01 (12:00 skipped); 12:02 skipped too.
    assert claimed(engine, task_id) == [M + timedelta(minutes=1)]
    assert next_time(engine, task_id) == M + timedelta(minutes=3)


def test_a_skip_through_the_service_moves_the_stored_next_occurrence(engine: Engine) -> None:
    task_id = add_task(engine, {"cron": "* * * * *"})
    with engine.begin() as conn:
        exclusions.skip_occurrence(
            conn, "default", task_id, {"scheduled_for": M.isoformat()}, M - timedelta(seconds=20)
        )
    assert next_time(engine, task_id) == M + timedelta(minutes=1)
    with engine.begin() as conn, pytest.raises(ValidationError) as refused:
        exclusions.skip_occurrence(
            conn,
            "default",
            task_id,
            {"scheduled_for": (M + timedelta(seconds=1)).isoformat()},
            M,
        )
    assert refused.value.field == "scheduled_for"


def test_a_calendar_date_is_not_claimed(engine: Engine) -> None:
    with engine.begin() as conn:
        exclusions.create_calendar(
            conn, "default", {"name": "sunday", "timezone": "UTC", "dates": ["2026-11-22"]}, M
        )
    task_id = add_task(engine, {"cron": "0 * * * *"}, exclude_calendars=["sunday"])
    assert next_time(engine, task_id) == datetime(2026, 11, 23, tzinfo=UTC)
    # A tick on the excluded day claims nothing.
    discovery.run_tick(engine, DEFAULTS, lambda requests: None, lambda: M + timedelta(hours=3))
    assert claimed(engine, task_id) == []
    # The stored next time moved back into the day behind the service's back: the claim
    # still fires none of the day's occurrences, and goes on to the next day.
    with engine.begin() as conn:
        task_queries.update_task(conn, task_id, {"next_execution_time": M})
    discovery.run_tick(engine, DEFAULTS, lambda requests: None, lambda: M + timedelta(hours=3))
    assert claimed(engine, task_id) == []
    assert next_time(engine, task_id) == datetime(2026, 11, 23, tzinfo=UTC)


def test_past_skips_are_pruned(engine: Engine) -> None:
    task_id = add_task(engine, {"cron": "* * * * *"})
    with engine.begin() as conn:
        exclusion_queries.add_skip(conn, task_id, M, M)
        exclusion_queries.add_skip(conn, task_id, M + timedelta(days=3), M)
        assert exclusions.prune_skips(conn, M + timedelta(days=2)) == 1
        assert exclusion_queries.skips_of(conn, [task_id]) == {task_id: {M + timedelta(days=3)}}
        exclusion_queries.remove_skip(conn, task_id, M + timedelta(days=3))
        row = task_queries.get_task(conn, task_id)
        assert row is not None and row["has_skips"] is False


def test_a_skip_prunes_its_tasks_past_skips(engine: Engine) -> None:
    task_id = add_task(engine, {"cron": "* * * * *"})
    later = M + timedelta(days=2)
    with engine.begin() as conn:
        exclusion_queries.add_skip(conn, task_id, M, M)
        exclusions.skip_occurrence(
            conn,
            "default",
            task_id,
            {"scheduled_for": (later + timedelta(minutes=1)).isoformat()},
            later,
        )
        assert exclusion_queries.skips_of(conn, [task_id]) == {
            task_id: {later + timedelta(minutes=1)}
        }


def test_skipping_an_occurrence_already_written_down_withdraws_it(engine: Engine) -> None:
    task_id = add_task(engine, {"cron": "* * * * *"})
    discovery.run_tick(engine, DEFAULTS, lambda requests: None, lambda: M - timedelta(seconds=10))
    assert claimed(engine, task_id) == [M]  # staged: its fire time is still ahead
    with engine.begin() as conn:
        exclusions.skip_occurrence(
            conn, "default", task_id, {"scheduled_for": M.isoformat()}, M - timedelta(seconds=8)
        )
    assert claimed(engine, task_id) == []
    assert next_time(engine, task_id) == M + timedelta(minutes=1)
    discovery.run_tick(engine, DEFAULTS, lambda requests: None, lambda: M + timedelta(seconds=5))
    assert claimed(engine, task_id) == [M + timedelta(minutes=1)]


def test_a_calendar_change_withdraws_what_it_now_excludes(engine: Engine) -> None:
    with engine.begin() as conn:
        exclusions.create_calendar(
            conn, "default", {"name": "days", "timezone": "UTC", "dates": []}, M
        )
    task_id = add_task(engine, {"cron": "* * * * *"}, exclude_calendars=["days"])
    discovery.run_tick(engine, DEFAULTS, lambda requests: None, lambda: M - timedelta(seconds=10))
    assert claimed(engine, task_id) == [M]
    with engine.begin() as conn:
        exclusions.update_calendar(
            conn, "default", "days", {"dates": ["2026-11-22"]}, M - timedelta(seconds=8)
        )
    assert claimed(engine, task_id) == []
    assert next_time(engine, task_id) == datetime(2026, 11, 23, tzinfo=UTC)


def test_migration_0015_downgrades_and_upgrades_again(database_url: str) -> None:
    schema.upgrade(database_url)
    engine = engines.create_engine(database_url)
    try:
        task_id = add_task(engine, {"cron": "* * * * *"})
        command.downgrade(schema.alembic_config(database_url), "0014")
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            columns = {c["name"] for c in sa.inspect(conn).get_columns("scheduled_tasks")}
        assert not {"calendars", "occurrence_skips"} & tables
        assert not {"exclude_calendars", "has_skips"} & columns
        schema.upgrade(database_url)
        schema.check(database_url)
        with engine.connect() as conn:
            row = task_queries.get_task(conn, task_id)
        assert row is not None
        assert (row["exclude_calendars"], row["has_skips"]) == (None, False)
    finally:
        engine.dispose()
