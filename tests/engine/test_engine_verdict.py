from __future__ import annotations

from typing import Any

import pytest

from vmclock.engine.report import ready_condition, summarize, synced_condition


def vms(*phases: str) -> list[dict[str, Any]]:
    return [{"uuid": f"{i:032x}", "phase": p, "conflictWith": "ns/old"} for i, p in enumerate(phases)]


def test_summary_counts_each_phase() -> None:
    assert summarize(vms("InSync", "Applied", "Pending", "Failed", "NotFound", "Conflict", "Drifted")) == {
        "total": 7,
        "inSync": 2,
        "pending": 1,
        "failed": 1,
        "notFound": 1,
        "conflicted": 1,
        "drifted": 1,
        "pendingRestart": 0,
    }


@pytest.mark.parametrize(
    ("phases", "status", "reason"),
    [
        (("InSync", "Applied"), "True", "Available"),
        (("InSync", "Conflict", "NotFound", "Failed", "Drifted"), "False", "Conflict"),
        (("InSync", "NotFound", "Failed", "Drifted"), "False", "VmNotFound"),
        (("InSync", "Failed", "Drifted"), "False", "PartiallyApplied"),
        (("InSync", "Pending"), "False", "PartiallyApplied"),
        (("InSync", "Drifted"), "False", "Drifted"),
    ],
)
def test_ready_names_the_most_actionable_reason(phases: tuple[str, ...], status: str, reason: str) -> None:
    condition = ready_condition(vms(*phases), track="guest", enforce=False, paused=False)
    assert (condition.status, condition.reason) == (status, reason)


def test_messages_list_a_few_examples() -> None:
    condition = ready_condition(vms(*["Drifted"] * 5), track="guest", enforce=True, paused=True)
    assert "5 of 5" in condition.message
    assert "paused" in condition.message
    assert "and 2 more" in condition.message
    assert "ns/old" in ready_condition(vms("Conflict"), track="guest", enforce=True, paused=False).message


@pytest.mark.parametrize(
    ("paused", "error", "status", "reason"),
    [
        (True, "SYS.1001 boom", "False", "ReconcilePaused"),
        (False, "SYS.1001 boom", "False", "ReconcileError"),
        (False, None, "True", "ReconcileSuccess"),
    ],
)
def test_synced(paused: bool, error: str | None, status: str, reason: str) -> None:
    condition = synced_condition(paused=paused, first_error=error)
    assert (condition.status, condition.reason) == (status, reason)
    if reason == "ReconcileError":
        assert condition.message == "SYS.1001 boom"
