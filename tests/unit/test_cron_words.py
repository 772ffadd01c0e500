"""A schedule in words: what the console's list of tasks shows beside each name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from taskhub.core.cron import MACROS, parse_cron
from taskhub.core.cron_words import (
    describe,
    describe_cron,
    describe_interval,
    describe_once,
    describe_view,
)
from taskhub.core.errors import ScheduleError
from taskhub.core.schedules import Cron, Interval, OneTime

T0 = datetime(2027, 1, 1, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "zone", "words"),
    [
        ("0 9 * * 1-5", "Asia/Taipei", "At 09:00, Monday through Friday (Asia/Taipei)"),
        ("0 9 * * MON-FRI", "Asia/Taipei", "At 09:00, Monday through Friday (Asia/Taipei)"),
        ("15 * * * *", "UTC", "At minute 15 of every hour (UTC)"),
        ("* * * * *", "UTC", "Every minute (UTC)"),
        ("*/5 * * * *", "UTC", "Every 5 minutes (UTC)"),
        ("0 9,17 * * *", "UTC", "At 09:00 and 17:00 (UTC)"),
        ("0,30 * * * *", "UTC", "At minutes 0 and 30 of every hour (UTC)"),
        ("30 9 1 * *", "UTC", "At 09:30, on day 1 of the month (UTC)"),
        ("0 0 1 1 *", "UTC", "At 00:00, on day 1 of the month, in January (UTC)"),
        ("0 12 * jan-mar *", "UTC", "At 12:00, in January through March (UTC)"),
        ("0 */2 * * *", "UTC", "At minute 0 past every 2nd hour (UTC)"),
        ("0 */5 * * *", "UTC", "At minute 0 past hours 00, 05, 10, 15 and 20 (UTC)"),
        ("*/7 * * * *", "UTC", "Every 7th minute from 0 through 56 (UTC)"),
        ("*/90 * * * *", "UTC", "At minute 0 of every hour (UTC)"),
        ("* 3 * * *", "UTC", "Every minute, between 03:00 and 03:59 (UTC)"),
        (
            "*/10 9-17 * * 1-5",
            "Europe/Paris",
            "Every 10 minutes, between 09:00 and 17:59, Monday through Friday (Europe/Paris)",
        ),
        ("0 0 * * 5-7", "UTC", "At 00:00, Friday through Sunday (UTC)"),
        ("0 0 * * 7", "UTC", "At 00:00, on Sunday (UTC)"),
        ("5 4 * * sun", "UTC", "At 04:05, on Sunday (UTC)"),
        ("0 0 * * 1/2", "UTC", "At 00:00, on Monday, Wednesday and Friday (UTC)"),
        # Both day fields restricted: either matches (Vixie cron).
        ("0 0 1,15 * 1", "UTC", "At 00:00, on days 1 and 15 of the month or on Monday (UTC)"),
        ("0 0 31 */2 *", "UTC", "At 00:00, on day 31 of the month, in every 2nd month (UTC)"),
        ("*/15,7 * * * *", "UTC", "At minutes 0, 7, 15, 30 and 45 of every hour (UTC)"),
        # A field allowing every value says nothing, however it is written.
        ("0/1 * * * *", "UTC", "Every minute (UTC)"),
        ("0-59/5 * * * *", "UTC", "Every 5 minutes (UTC)"),
        ("0 0 */1 * 1", "UTC", "At 00:00, on Monday (UTC)"),
        # ... and with both day fields restricted, one allowing every day, every day fires.
        ("0 0 13 * 0-6", "UTC", "At 00:00 (UTC)"),
        ("0 0 1-31 * 1", "UTC", "At 00:00 (UTC)"),
        # Macros read as their five fields.
        ("@daily", "UTC", "At 00:00 (UTC)"),
        ("@midnight", "UTC", "At 00:00 (UTC)"),
        ("@hourly", "UTC", "At minute 0 of every hour (UTC)"),
        ("@weekly", "UTC", "At 00:00, on Sunday (UTC)"),
        ("@monthly", "UTC", "At 00:00, on day 1 of the month (UTC)"),
        ("@yearly", "UTC", "At 00:00, on day 1 of the month, in January (UTC)"),
        ("@annually", "UTC", "At 00:00, on day 1 of the month, in January (UTC)"),
        # Day tokens.
        ("0 9 L * *", "UTC", "At 09:00, on the last day of the month (UTC)"),
        ("0 9 l * *", "UTC", "At 09:00, on the last day of the month (UTC)"),
        ("0 9 L-1 * *", "UTC", "At 09:00, on the day before the last day of the month (UTC)"),
        (
            "0 9 L-3 * *",
            "UTC",
            "At 09:00, on the day 3 days before the last day of the month (UTC)",
        ),
        ("0 9 15W * *", "UTC", "At 09:00, on the weekday nearest day 15 (UTC)"),
        ("0 9 LW * *", "UTC", "At 09:00, on the last weekday of the month (UTC)"),
        ("0 17 * * 5L", "UTC", "At 17:00, on the last Friday of the month (UTC)"),
        ("0 17 * * FRIL", "UTC", "At 17:00, on the last Friday of the month (UTC)"),
        ("0 9 * * 1#2", "UTC", "At 09:00, on the 2nd Monday of the month (UTC)"),
        ("0 9 * * sun#1", "UTC", "At 09:00, on the 1st Sunday of the month (UTC)"),
        ("0 9 * * 7#3", "UTC", "At 09:00, on the 3rd Sunday of the month (UTC)"),
        (
            "0 9 1,15,L * *",
            "UTC",
            "At 09:00, on days 1 and 15 of the month and the last day of the month (UTC)",
        ),
        (
            "0 9 * * 1#1,5L",
            "UTC",
            "At 09:00, on the 1st Monday of the month and the last Friday of the month (UTC)",
        ),
        (
            "0 9 * * MON-FRI,6L",
            "UTC",
            "At 09:00, on Monday through Friday and the last Saturday of the month (UTC)",
        ),
        (
            "0 9 L * 1#1",
            "UTC",
            "At 09:00, on the last day of the month or on the 1st Monday of the month (UTC)",
        ),
        ("0 9 *,L * *", "UTC", "At 09:00 (UTC)"),  # every day already
    ],
)
def test_cron_in_words(expression: str, zone: str, words: str) -> None:
    assert describe_cron(expression, zone) == words


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (1, "Every second"),
        (90, "Every 90 seconds"),
        (60, "Every minute"),
        (300, "Every 5 minutes"),
        (3600, "Every hour"),
        (5400, "Every 90 minutes"),
        (86400, "Every day"),
        (14 * 86400, "Every 2 weeks"),
    ],
)
def test_interval_in_words(seconds: int, words: str) -> None:
    assert describe_interval(seconds) == words


def test_one_time_in_words_is_in_utc() -> None:
    assert describe_once(T0) == "Once, at 2027-01-01 09:00 UTC"
    taipei = timezone(timedelta(hours=8))
    assert describe_once(datetime(2027, 1, 1, 17, 0, 30, tzinfo=taipei)) == (
        "Once, at 2027-01-01 09:00:30 UTC"
    )


def test_every_kind_of_schedule_and_its_api_view() -> None:
    assert describe(Cron("0 9 * * 1-5", "Asia/Taipei")) == describe_view(
        {"cron": "0 9 * * 1-5", "timezone": "Asia/Taipei"}
    )
    assert describe(Interval(300, anchor=T0)) == describe_view({"interval_seconds": 300})
    assert describe(OneTime(T0)) == describe_view({"at": T0.isoformat()})
    assert describe_view({"at": "not a time"}) == "Schedule not known"


@pytest.mark.parametrize(
    "expression", ["59 23 L/2 * *", "@reboot", "@daily 5", "1 2 3", "0 0 30 2 *", "0 0 L-30 2 *"]
)
def test_a_cron_not_accepted_reads_as_itself(expression: str) -> None:
    assert describe_cron(expression) == f"Cron {expression} (UTC)"


# --- any accepted cron has words -------------------------------------------------------

_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_NAMES = (
    (),
    (),
    (),
    ("JAN", "feb", "Mar", "APR", "may", "JUN", "jul", "AUG", "sep", "OCT", "nov", "DEC"),
    ("SUN", "mon", "Tue", "WED", "thu", "FRI", "sat"),
)


@st.composite
def cron_items(draw: st.DrawFn, index: int) -> str:
    low, high = _BOUNDS[index]
    names = _NAMES[index]

    def value() -> str:
        number = draw(st.integers(low, high))
        if names and number - low < len(names) and draw(st.booleans()):
            return names[number - low]
        return str(number)

    kinds = ["star", "value", "range", "step", "range-step", "open-step"]
    kind = draw(st.sampled_from(kinds + (["token"] if index in (2, 4) else [])))
    step = draw(st.integers(1, high + 5))
    if kind == "token" and index == 2:
        return draw(st.sampled_from(["L", "l", "LW", "L-1", "L-7", "L-30", "1W", "15W", "31W"]))
    if kind == "token":
        weekday = value()
        return draw(st.sampled_from([f"{weekday}L", *(f"{weekday}#{n}" for n in range(1, 6))]))
    if kind == "star":
        return "*"
    if kind == "value":
        return value()
    if kind == "range":
        return f"{value()}-{value()}"
    if kind == "step":
        return f"*/{step}"
    if kind == "range-step":
        return f"{value()}-{value()}/{step}"
    return f"{value()}/{step}"


@st.composite
def crons(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(sorted(MACROS)))
    fields = [
        ",".join(draw(st.lists(cron_items(index), min_size=1, max_size=4))) for index in range(5)
    ]
    return " ".join(fields)


@given(crons(), st.sampled_from(["UTC", "Asia/Taipei", "America/New_York"]))
def test_any_accepted_cron_has_words(expression: str, zone: str) -> None:
    try:
        parse_cron(expression)
    except ScheduleError:
        assume(False)
    words = describe_cron(expression, zone)
    assert words.endswith(f" ({zone})")
    assert words[: -len(f" ({zone})")].strip()
    assert not words.startswith("Cron "), words  # worded, not merely repeated
