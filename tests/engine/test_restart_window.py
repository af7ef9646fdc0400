"""spec.restart and its maintenance window: the cron subset, window math on a fake clock, time zones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vmclock.engine.cron import Cron, CronError, MaintenanceWindow
from vmclock.engine.restartspec import parse_duration, parse_restart
from vmclock.engine.spec import InvalidSpec


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def rolling(**window: Any) -> dict[str, Any]:
    return {
        "restart": {
            "policy": "Rolling",
            "maintenanceWindow": {"schedule": "0 2 * * 6", "duration": "4h", **window},
        }
    }


def window_of(spec: dict[str, Any]) -> MaintenanceWindow:
    window = parse_restart(spec).window
    assert window is not None
    return window


@pytest.mark.parametrize(
    ("text", "moment", "fires"),
    [
        ("0 2 * * 6", "2026-12-05T02:00", True),  # a Saturday
        ("0 2 * * 6", "2026-12-06T02:00", False),  # a Sunday
        ("0 2 * * 6", "2026-12-05T02:01", False),
        ("*/15 * * * *", "2026-12-07T10:45", True),
        ("*/15 * * * *", "2026-12-07T10:50", False),
        ("0-30/10 8 * * *", "2026-12-07T08:30", True),
        ("0-30/10 8 * * *", "2026-12-07T08:40", False),
        ("5,35 1-3 * * *", "2026-12-07T03:35", True),
        ("5,35 1-3 * * *", "2026-12-07T04:35", False),
        ("0 0 * * 7", "2026-12-06T00:00", True),  # 7 is Sunday too
        ("0 0 * * 0", "2026-12-06T00:00", True),
        ("0 0 1 * 1", "2026-12-01T00:00", True),  # both day fields restricted: either fires (a Tuesday)
        ("0 0 1 * 1", "2026-12-07T00:00", True),  # a Monday
        ("0 0 1 * 1", "2026-12-08T00:00", False),
        ("0 0 */2 * *", "2026-12-07T00:00", True),  # */2 is a star: the weekday (any) does not widen it
        ("0 0 */2 * *", "2026-12-08T00:00", False),
        ("0 12 * 6-8 *", "2026-07-01T12:00", True),
        ("0 12 * 6-8 *", "2026-12-01T12:00", False),
    ],
)
def test_cron_matches(text: str, moment: str, fires: bool) -> None:
    assert Cron.parse(text).matches(at(moment)) is fires


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("0 2 * *", "has 4 fields; expected 5"),
        ("0 2 * * * *", "has 6 fields"),
        ("60 2 * * *", "minute: 60 is outside 0-59"),
        ("0 24 * * *", "hour: 24 is outside 0-23"),
        ("0 0 0 * *", "day of month: 0 is outside 1-31"),
        ("0 0 * 13 *", "month: 13 is outside 1-12"),
        ("0 0 * * 8", "day of week: 8 is outside 0-7"),
        ("0 0 * * MON", "'MON' is not a number"),
        ("5-1 * * * *", "range 5-1 runs backwards"),
        ("*/0 * * * *", "minute step: 0 is outside"),
        ("1,,2 * * * *", "empty list item"),
    ],
)
def test_bad_cron_says_why(text: str, problem: str) -> None:
    with pytest.raises(CronError, match=problem):
        Cron.parse(text)


def test_a_window_is_open_from_its_fire_time_for_its_duration() -> None:
    window = window_of(rolling())
    saturday = at("2026-12-05T02:00")
    assert window.open_since(saturday - timedelta(seconds=1)) is None
    assert window.open_since(saturday) == saturday
    assert window.open_since(saturday + timedelta(hours=3, minutes=59, seconds=59)) == saturday
    assert window.open_since(saturday + timedelta(hours=4)) is None


def test_overlapping_windows_are_one_period_from_its_first_fire_time() -> None:
    window = window_of(rolling(schedule="0 1,2 * * *", duration="90m"))
    assert window.open_since(at("2026-12-07T03:29")) == at("2026-12-07T01:00")
    assert window.open_since(at("2026-12-07T03:30")) is None
    touching = window_of(rolling(schedule="0 1,2 * * *", duration="1h"))
    assert touching.open_since(at("2026-12-07T02:30")) == at("2026-12-07T01:00")


def test_an_always_open_schedule_keeps_one_start_for_a_week() -> None:
    window = window_of(rolling(schedule="* * * * *", duration="1h"))
    monday = at("2026-12-07T00:00")
    assert window.open_since(at("2026-12-07T10:17")) == monday
    assert window.open_since(at("2026-12-13T23:59")) == monday
    assert window.open_since(at("2026-12-14T00:00")) == at("2026-12-14T00:00")


def test_the_next_opening_is_the_next_fire_time() -> None:
    window = window_of(rolling())
    assert window.next_opening(at("2026-12-05T02:00")) == at("2026-12-12T02:00")
    assert window.next_opening(at("2026-12-07T10:17:33")) == at("2026-12-12T02:00")
    assert window.next_opening(at("2026-12-05T01:59:59")) == at("2026-12-05T02:00")


def test_a_window_is_read_in_its_time_zone_across_daylight_saving() -> None:
    berlin = window_of(rolling(schedule="0 2 * * *", duration="1h", timeZone="Europe/Berlin"))
    assert berlin.open_since(at("2026-12-07T01:30")) == at("2026-12-07T01:00")  # CET: UTC+1
    assert berlin.open_since(at("2026-07-07T00:30")) == at("2026-07-07T00:00")  # CEST: UTC+2
    # 29 March 2026: 02:00 local does not exist (clocks jump 02:00 -> 03:00), so that night never opens
    assert berlin.next_opening(at("2026-03-28T02:00")) == at("2026-03-30T00:00")


def test_half_hour_offset_changes_neither_skip_nor_miss_a_fire_time() -> None:
    # Chatham moves from +12:45 to +13:45 at 02:45 local on 27 September 2026: 02:30 is still a fire time
    chatham = window_of(rolling(schedule="30 2 * * *", duration="4h", timeZone="Pacific/Chatham"))
    assert chatham.open_since(at("2026-09-26T15:00")) == at("2026-09-26T13:45")
    # Lord Howe moves back from +11 to +10:30 at 02:00 local on 5 April 2026: 01:45 comes twice
    twice = window_of(rolling(schedule="45 1 * * *", duration="10m", timeZone="Australia/Lord_Howe"))
    assert twice.next_opening(at("2026-04-04T14:46")) == at("2026-04-04T15:15")


def test_a_date_that_never_comes_has_no_opening() -> None:
    assert window_of(rolling(schedule="0 0 31 2 *")).next_opening(at("2026-01-01T00:00")) is None
    leap = window_of(rolling(schedule="0 0 29 2 *"))
    assert leap.next_opening(at("2026-01-01T00:00")) == at("2028-02-29T00:00")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("4h", 14400), ("90m", 5400), ("1h30m", 5400), ("1.5h", 5400), ("168h", 604800), ("60s", 60)],
)
def test_go_durations(text: str, seconds: int) -> None:
    assert parse_duration(text, "f") == timedelta(seconds=seconds)


def test_restart_defaults_to_never_and_never_needs_no_window() -> None:
    assert not parse_restart({}).rolling
    assert not parse_restart({"restart": None}).rolling
    assert not parse_restart({"restart": {"policy": "Never", "maxConcurrent": 3}}).rolling
    spec = parse_restart(rolling(timeZone="Asia/Shanghai") | {})
    assert (spec.rolling, spec.max_concurrent) == (True, 1)


@pytest.mark.parametrize(
    ("restart", "field", "says"),
    [
        ("weekly", "spec.restart", "must be an object"),
        ({"policy": "Always"}, "spec.restart.policy", "allowed values: Never, Rolling"),
        ({"policy": "Rolling"}, "spec.restart.maintenanceWindow", "required with policy Rolling"),
        ({"maxConcurrent": 0}, "spec.restart.maxConcurrent", "from 1 to 100"),
        ({"maxConcurrent": True}, "spec.restart.maxConcurrent", "from 1 to 100"),
        ({"onlyRunning": False}, "spec.restart.onlyRunning", "only true is allowed"),
        ({"every": "week"}, "spec.restart.every", "allowed fields: policy"),
        (
            {"policy": "Rolling", "maintenanceWindow": {"schedule": "0 2 31 2 x", "duration": "4h"}},
            "spec.restart.maintenanceWindow.schedule",
            "day of week: 'x' is not a number",
        ),
        (
            {"policy": "Rolling", "maintenanceWindow": {"schedule": "0 2 * * 6", "duration": "4 hours"}},
            "spec.restart.maintenanceWindow.duration",
            "Go-style duration such as 4h",
        ),
        (
            {"policy": "Rolling", "maintenanceWindow": {"schedule": "0 2 * * 6", "duration": "169h"}},
            "spec.restart.maintenanceWindow.duration",
            "from 1m to 168h",
        ),
        (
            {
                "policy": "Rolling",
                "maintenanceWindow": {"schedule": "0 2 * * 6", "duration": "4h", "timeZone": "Mars/Olympus"},
            },
            "spec.restart.maintenanceWindow.timeZone",
            "not an IANA time zone; use e.g. UTC",
        ),
    ],
)
def test_bad_restart_names_the_field_and_what_is_allowed(restart: Any, field: str, says: str) -> None:
    with pytest.raises(InvalidSpec) as raised:
        parse_restart({"restart": restart})
    assert raised.value.field == field
    assert says in raised.value.problem
