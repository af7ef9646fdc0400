"""Five-field cron schedules and the maintenance windows they open, in a time zone.

Why our own parser: croniter is deprecated and the subset a maintenance window needs is small. Fields are
`minute hour day-of-month month day-of-week` with `*`, lists (`1,3`), ranges (`1-5`) and steps (`*/15`,
`0-30/10`); day-of-week 0..7 with 0 and 7 both Sunday. As in Vixie cron, when both day fields are restricted
a day matching either one fires.

Fire times are matched on the wall clock of the window's time zone, one UTC minute at a time: a local time
skipped by a daylight-saving jump never fires, one repeated fires twice (each opens its own window). Whole
local hours that cannot fire are hopped over, except across an offset change (some are 30 minutes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
WEEK = timedelta(days=7)
CHAIN_LIMIT = timedelta(days=8)  # longer than the longest window (168h), so a real gap is always found
EPOCH = datetime(1970, 1, 5, tzinfo=UTC)  # a Monday: week-long periods start on Mondays 00:00 UTC
SEARCH_YEARS = 5  # "29 February" fires once in four years; anything rarer is refused as never opening


class CronError(ValueError):
    """A schedule that is not a five-field cron expression; the message says what is allowed."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12),
    _Field("day of week", 0, 7),
)


def _number(text: str, field: _Field) -> int:
    if not text.isdigit():
        raise CronError(f"{field.name}: {text!r} is not a number from {field.low} to {field.high}")
    value = int(text)
    if not field.low <= value <= field.high:
        raise CronError(f"{field.name}: {value} is outside {field.low}-{field.high}")
    return value


def _part(text: str, field: _Field) -> set[int]:
    """One list item: `*`, `n`, `a-b`, each optionally `/step`."""
    if not text:
        raise CronError(f"{field.name}: empty list item")
    base, slash, step_text = text.partition("/")
    step = _number(step_text, _Field(f"{field.name} step", 1, field.high - field.low + 1)) if slash else 1
    if base == "*":
        low, high = field.low, field.high
    elif "-" in base:
        first, _, last = base.partition("-")
        low, high = _number(first, field), _number(last, field)
        if low > high:
            raise CronError(f"{field.name}: range {base} runs backwards")
    else:
        low = _number(base, field)
        high = field.high if slash else low
    return set(range(low, high + 1, step))


def _values(text: str, field: _Field) -> frozenset[int]:
    return frozenset().union(*(_part(item, field) for item in text.split(",")))


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday .. 6 = Saturday (7 folded onto 0)
    any_day: bool  # day of month is `*`
    any_weekday: bool  # day of week is `*`

    @classmethod
    def parse(cls, text: str) -> Cron:
        parts = text.split()
        if len(parts) != len(_FIELDS):
            raise CronError(
                f"{text!r} has {len(parts)} fields; expected 5: minute hour day-of-month month day-of-week "
                "(e.g. '0 2 * * 6' for Saturdays at 02:00)"
            )
        minutes, hours, days, months, weekdays = (_values(p, f) for p, f in zip(parts, _FIELDS, strict=True))
        return cls(
            minutes,
            hours,
            days,
            months,
            frozenset(d % 7 for d in weekdays),
            any_day=parts[2].startswith("*"),
            any_weekday=parts[4].startswith("*"),
        )

    def _day_matches(self, moment: datetime) -> bool:
        by_day = moment.day in self.days
        by_weekday = moment.isoweekday() % 7 in self.weekdays
        if self.any_day or self.any_weekday:
            return by_day and by_weekday
        return by_day or by_weekday

    def hour_matches(self, moment: datetime) -> bool:
        """The month, day and hour fire (some minute of this wall-clock hour may)."""
        return moment.month in self.months and self._day_matches(moment) and moment.hour in self.hours

    def matches(self, moment: datetime) -> bool:
        """`moment` is a wall-clock time (its own time zone's fields are matched)."""
        return self.hour_matches(moment) and moment.minute in self.minutes


def _floor_minute(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


@dataclass(frozen=True)
class MaintenanceWindow:
    """Opens at every fire time of `schedule` (in `zone`) and stays open for `duration`."""

    schedule: Cron
    duration: timedelta
    zone: ZoneInfo

    def open_since(self, now: datetime) -> datetime | None:
        """The start (UTC) of the window open at `now`, None if closed. Windows that overlap or touch are
        one open period starting at its first fire time, so a rollout never restarts in the middle of it.
        A period open longer than CHAIN_LIMIT (e.g. `* * * * *`) starts at its week (from the epoch)."""
        start = self._last_fire(now - self.duration, now)
        while start is not None:
            if start <= now - CHAIN_LIMIT:
                return EPOCH + (now - EPOCH) // WEEK * WEEK
            earlier = self._first_fire(start - self.duration, start)  # a window reaching `start`
            if earlier is None:
                return start
            start = earlier
        return None

    def next_opening(self, now: datetime) -> datetime | None:
        """The first fire time (UTC) after `now`; None if none within SEARCH_YEARS (e.g. 31 February)."""
        return self._first_fire(_floor_minute(now) + MINUTE, now + timedelta(days=366 * SEARCH_YEARS))

    def _first_fire(self, start: datetime, end: datetime) -> datetime | None:
        """The first fire time in [start, end), stepping over whole local hours that cannot fire (time zone
        offsets move by whole hours or half hours, so local hours start on UTC minutes)."""
        moment = _floor_minute(start)
        moment += MINUTE if moment < start else timedelta(0)
        local = moment.astimezone(self.zone)
        while moment < end:
            if not self.schedule.hour_matches(local):
                moment, local = self._hop(moment, local, timedelta(minutes=60 - local.minute))
            elif local.minute in self.schedule.minutes:
                return moment
            else:
                moment, local = self._hop(moment, local, MINUTE)
        return None

    def _last_fire(self, start: datetime, end: datetime) -> datetime | None:
        """The last fire time in (start, end], stepping back over local hours that cannot fire."""
        moment = _floor_minute(end)
        local = moment.astimezone(self.zone)
        while moment > start:
            if not self.schedule.hour_matches(local):
                moment, local = self._hop(moment, local, -timedelta(minutes=local.minute + 1))
            elif local.minute in self.schedule.minutes:
                return moment
            else:
                moment, local = self._hop(moment, local, -MINUTE)
        return None

    def _hop(self, moment: datetime, local: datetime, step: timedelta) -> tuple[datetime, datetime]:
        """`moment + step` (UTC and local), the next or previous local hour or minute, unless the zone's
        offset changes in between: then local hours are not whole UTC hours (Lord Howe's 30-minute jump
        leaves its local hour 02 half an hour long), so one minute only, never skipping a wall-clock minute
        that may fire."""
        target = moment + step
        seen = target.astimezone(self.zone)
        if seen.utcoffset() == local.utcoffset() or abs(step) == MINUTE:
            return target, seen
        target = moment + (MINUTE if step > timedelta(0) else -MINUTE)
        return target, target.astimezone(self.zone)
