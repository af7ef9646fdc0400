"""`spec.restart`: whether and when the operator may reboot the VMs a policy changed (opt-in).

Parsed apart from the rest of the spec on purpose: a maintenance window the schema could not judge (a cron
day that does not exist, an unknown time zone) stops the rollout and says so in the `Rollout` condition,
but never stops the policy from keeping its VMs' tracks. Every rejection names the field and what it
accepts, like the rest of the spec's errors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from vmclock.engine.cron import Cron, CronError, MaintenanceWindow
from vmclock.engine.spec import InvalidSpec, object_of

NEVER, ROLLING = "Never", "Rolling"
RESTART_POLICIES = (NEVER, ROLLING)
MAX_CONCURRENT = 100
MIN_WINDOW = timedelta(minutes=1)
MAX_WINDOW = timedelta(days=7)
_FIELDS = ("policy", "maintenanceWindow", "maxConcurrent", "onlyRunning")
_WINDOW_FIELDS = ("schedule", "duration", "timeZone")
# Go's time.ParseDuration units (what Kubernetes users write elsewhere, e.g. "90m", "1h30m")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:h|ms|us|µs|ns|m|s))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)")


@dataclass(frozen=True)
class RestartSpec:
    """`window` is None only for `Never`."""

    policy: str = NEVER
    window: MaintenanceWindow | None = None
    max_concurrent: int = 1

    @property
    def rolling(self) -> bool:
        return self.policy == ROLLING


def parse_duration(text: Any, field: str) -> timedelta:
    if not isinstance(text, str) or not _DURATION.match(text):
        raise InvalidSpec(field, f"got {text!r}; expected a Go-style duration such as 4h, 90m or 1h30m")
    seconds = sum(float(number) * _UNITS[unit] for number, unit in _DURATION_PART.findall(text))
    duration = timedelta(seconds=seconds)
    if not MIN_WINDOW <= duration <= MAX_WINDOW:
        raise InvalidSpec(field, f"got {text!r}; a maintenance window lasts from 1m to 168h")
    return duration


def _zone(name: Any) -> ZoneInfo:
    field = "spec.restart.maintenanceWindow.timeZone"
    if not isinstance(name, str) or not name:
        raise InvalidSpec(
            field, f"got {name!r}; expected an IANA time zone name such as UTC or Europe/Berlin"
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidSpec(
            field, f"got {name!r}, which is not an IANA time zone; use e.g. UTC, Europe/Berlin, Asia/Shanghai"
        ) from None


def _window(raw: Any) -> MaintenanceWindow:
    field = "spec.restart.maintenanceWindow"
    if raw is None:
        raise InvalidSpec(field, "is required with policy Rolling: an object with schedule and duration")
    raw = object_of(raw, field, _WINDOW_FIELDS)
    schedule = raw.get("schedule")
    if not isinstance(schedule, str):
        raise InvalidSpec(f"{field}.schedule", "is required: a 5-field cron expression such as '0 2 * * 6'")
    try:
        cron = Cron.parse(schedule)
    except CronError as problem:
        raise InvalidSpec(f"{field}.schedule", str(problem)) from None
    return MaintenanceWindow(
        cron, parse_duration(raw.get("duration"), f"{field}.duration"), _zone(raw.get("timeZone", "UTC"))
    )


def parse_restart(spec: Mapping[str, Any]) -> RestartSpec:
    """Validate `spec.restart`; absent or null means Never. Raises InvalidSpec naming the first bad field."""
    raw = spec.get("restart")
    if raw is None:
        return RestartSpec()
    raw = object_of(raw, "spec.restart", _FIELDS)
    policy = raw.get("policy", NEVER)
    if policy not in RESTART_POLICIES:
        raise InvalidSpec(
            "spec.restart.policy", f"got {policy!r}; allowed values: {', '.join(RESTART_POLICIES)}"
        )
    limit = raw.get("maxConcurrent", 1)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_CONCURRENT:
        raise InvalidSpec(
            "spec.restart.maxConcurrent", f"got {limit!r}; expected an integer from 1 to {MAX_CONCURRENT}"
        )
    if raw.get("onlyRunning", True) is not True:
        raise InvalidSpec(
            "spec.restart.onlyRunning",
            "only true is allowed: a VM that is not running takes the track at its next start without a "
            "reboot, and the operator never starts a stopped VM",
        )
    if policy == NEVER:
        return RestartSpec(NEVER, None, limit)
    return RestartSpec(ROLLING, _window(raw.get("maintenanceWindow")), limit)
