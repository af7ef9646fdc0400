"""A ZStackConnection's status from a check verdict.

`lastCheckTime` is a heartbeat-like field, so it is refreshed only when something else changed or once per
resync interval; a broken connection re-checked every few seconds must not PATCH every few seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from vmclock.connections.manager import ConnectionVerdict
from vmclock.engine.report import READY, Condition, find_condition, merge_conditions
from vmclock.engine.spec import format_timestamp, parse_timestamp


def connection_status(
    stored: Mapping[str, Any],
    verdict: ConnectionVerdict,
    *,
    generation: int,
    now: datetime,
    refresh_seconds: float,
) -> dict[str, Any]:
    ready = Condition(READY, "True" if verdict.ready else "False", verdict.reason, verdict.message)
    status: dict[str, Any] = {
        **stored,
        "observedGeneration": generation,
        "conditions": merge_conditions(
            stored.get("conditions"), [ready], generation=generation, now=format_timestamp(now)
        ),
    }
    if verdict.version:
        status["version"] = verdict.version
    if verdict.storage:
        status["clockTrackStorage"] = verdict.storage
    last = stored.get("lastCheckTime")
    same = {k: v for k, v in status.items() if k != "lastCheckTime"} == {
        k: v for k, v in stored.items() if k != "lastCheckTime"
    }
    fresh = isinstance(last, str) and (now - parse_timestamp(last)).total_seconds() < refresh_seconds
    if not (same and fresh):
        status["lastCheckTime"] = format_timestamp(now)
    return status


def was_ready(stored: Mapping[str, Any]) -> bool:
    condition = find_condition(stored.get("conditions"), READY)
    return condition is not None and condition.get("status") == "True"
