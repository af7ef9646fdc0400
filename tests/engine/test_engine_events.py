"""Events are posted for transitions only: a steady state posts nothing."""

from __future__ import annotations

from typing import Any

from vmclock.engine.plan import Phase, Plan, PreviousVm, Purpose, VmPlan, Write, WriteOutcome
from vmclock.engine.report import transition_events
from vmclock.zstack.errors import ZStackError

from .helpers import previous, reading, uuid


def reasons(
    entries: list[dict[str, Any]],
    before: dict[str, PreviousVm],
    *,
    plan: Plan | None = None,
    outcomes: tuple[WriteOutcome, ...] = (),
    was_paused: bool = False,
    paused: bool = False,
) -> list[str]:
    plan = plan or Plan(vms=())
    events = transition_events(plan, outcomes, entries, before, was_paused=was_paused, paused=paused)
    return [e.reason for e in events]


def test_a_steady_state_posts_nothing() -> None:
    before = {uuid(1): previous(1, phase="InSync", observed_track="guest")}
    assert reasons([{"uuid": uuid(1), "phase": "InSync"}], before) == []
    still_failing = {uuid(1): previous(1, phase="Failed", error_code="SYS.1007")}
    assert reasons([{"uuid": uuid(1), "phase": "Failed", "error": {"code": "SYS.1007"}}], still_failing) == []
    still_conflicted = {uuid(1): previous(1, phase="Conflict")}
    assert reasons([{"uuid": uuid(1), "phase": "Conflict"}], still_conflicted) == []


def test_writes_are_reported_by_purpose() -> None:
    outcomes = (
        WriteOutcome(Write(uuid(1), "guest", Purpose.APPLY)),
        WriteOutcome(Write(uuid(2), "guest", Purpose.DRIFT)),
        WriteOutcome(Write(uuid(3), "host", Purpose.RESTORE)),
        WriteOutcome(Write(uuid(4), "guest", Purpose.APPLY), error=ZStackError.client("SYS.1007", "bad")),
    )
    drift = Plan(vms=(VmPlan(uuid(2), reading(2), Phase.DRIFTED, drift=True),))
    entries = [{"uuid": uuid(4), "phase": "Failed", "error": {"code": "SYS.1007"}}]
    assert reasons(entries, {}, plan=drift, outcomes=outcomes) == [
        "DriftDetected",
        "Applied",
        "DriftCorrected",
        "Restored",
        "ApiError",
    ]


def test_observe_mode_drift_is_reported_once() -> None:
    entries = [{"uuid": uuid(1), "phase": "Drifted"}]
    assert reasons(entries, {}) == ["DriftDetected"]
    assert reasons(entries, {uuid(1): previous(1, phase="Drifted")}) == []


def test_pause_and_resume_and_new_conflicts() -> None:
    assert reasons([], {}, was_paused=False, paused=True) == ["Paused"]
    assert reasons([], {}, was_paused=True, paused=False) == ["Resumed"]
    assert reasons([{"uuid": uuid(1), "phase": "Conflict"}], {}) == ["Conflict"]


def test_a_new_error_code_is_a_new_event() -> None:
    before = {uuid(1): previous(1, phase="Pending", error_code="SYS.1001")}
    assert reasons([{"uuid": uuid(1), "phase": "Failed", "error": {"code": "SYS.1007"}}], before) == [
        "ApiError"
    ]
