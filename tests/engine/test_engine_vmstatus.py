"""Per-VM status entries: previousTrack bookkeeping, pendingRestart, advisories, errors."""

from __future__ import annotations

from typing import Any

import pytest

from vmclock.engine.pending import op_mark
from vmclock.engine.plan import Phase, PreviousVm, Purpose, VmPlan, VmReading, Write, WriteOutcome
from vmclock.engine.report import selected_vm_entry
from vmclock.zstack.errors import ZStackError

from .helpers import EARLIER_TEXT, NOW_TEXT, claim, inventory, previous, reading, uuid

WRITE = Write(uuid(1), "guest", Purpose.APPLY)


def entry(
    vm: VmReading,
    *,
    before: PreviousVm | None = None,
    outcome: WriteOutcome | None = None,
    phase: Phase = Phase.IN_SYNC,
) -> dict[str, Any]:
    plan = VmPlan(uuid(1), vm, Phase.DRIFTED if outcome else phase, write=WRITE if outcome else None)
    return selected_vm_entry(plan, outcome, before, desired="guest", now=NOW_TEXT)


def test_a_successful_write_records_previous_track_and_time() -> None:
    done = entry(reading(1, "host"), outcome=WriteOutcome(WRITE, inventory=inventory(1)))
    assert done["phase"] == "Applied"
    assert (done["observedTrack"], done["previousTrack"], done["lastAppliedTime"]) == (
        "guest",
        "host",
        NOW_TEXT,
    )
    assert done["inventory"]["name"] == "vm-1"


def test_previous_track_is_kept_from_the_first_change() -> None:
    before = previous(
        1, phase="InSync", observed_track="guest", previous_track="host", last_applied_time=EARLIER_TEXT
    )
    again = entry(reading(1, "host"), before=before, outcome=WriteOutcome(WRITE, inventory=inventory(1)))
    assert again["previousTrack"] == "host"
    steady = entry(reading(1, "guest"), before=before)
    assert (steady["previousTrack"], steady["lastAppliedTime"]) == ("host", EARLIER_TEXT)


@pytest.mark.parametrize(
    ("code", "phase"), [("SYS.1001", "Pending"), ("SYS.1007", "Failed"), ("SYS.1003", "NotFound")]
)
def test_a_failed_write_reports_the_zstack_error(code: str, phase: str) -> None:
    failed = entry(
        reading(1, "host"), outcome=WriteOutcome(WRITE, error=ZStackError.client(code, "nope", "why"))
    )
    assert failed["phase"] == phase
    assert failed["error"] == {"code": code, "description": "nope", "details": "why", "rootCauseCode": code}
    assert failed["observedTrack"] == "host"
    assert failed["previousTrack"] == "host"  # recorded on the attempt: a lost reply must not lose it


@pytest.mark.parametrize(
    ("state", "platform", "pending"),
    [
        ("Running", "Windows", True),
        ("Running", "WindowsVirtio", True),
        ("Stopped", "Windows", False),
        ("Running", "Linux", False),
    ],
)
def test_pending_restart_only_for_running_windows_vms(state: str, platform: str, pending: bool) -> None:
    vm = reading(1, "host", state=state, platform=platform)
    done = entry(vm, outcome=WriteOutcome(WRITE, inventory=inventory(1, state=state, platform=platform)))
    assert done["pendingRestart"] is pending
    assert ("next start or ZStack reboot" in done.get("message", "")) is pending


@pytest.mark.parametrize(
    ("state", "last_op", "still_pending"),
    [
        ("Running", "op-1", True),
        ("Stopped", "op-1", False),
        ("Running", "op-2", False),
        ("Starting", "op-1", False),
    ],
)
def test_pending_restart_clears_once_the_vm_was_restarted(
    state: str, last_op: str, still_pending: bool
) -> None:
    before = previous(
        1, phase="Applied", observed_track="guest", pending_restart=True, op_mark=op_mark("op-1")
    )
    later = entry(reading(1, "guest", state=state, last_op=last_op), before=before)
    assert later["pendingRestart"] is still_pending


def test_pending_restart_survives_an_unreadable_round() -> None:
    before = previous(1, phase="Applied", pending_restart=True, op_mark=op_mark("op-1"))
    later = entry(VmReading(error=ZStackError.client("SYS.1001", "slow")), before=before, phase=Phase.PENDING)
    assert later["pendingRestart"] is True


def test_linux_vms_get_the_platform_advisory() -> None:
    linux = entry(reading(1, "guest", platform="Linux"))
    assert "platform Linux" in linux["message"]
    assert "Windows/WindowsVirtio" in linux["message"]
    assert "message" not in entry(reading(1, "guest"))


def test_conflict_names_the_owner() -> None:
    owner = claim("older", "host", 1)
    plan = VmPlan(uuid(1), reading(1, "host"), Phase.CONFLICT, owner=owner)
    conflicted = selected_vm_entry(plan, None, None, desired="guest", now=NOW_TEXT)
    assert conflicted["conflictWith"] == "ns/older"
    assert "ns/older" in conflicted["message"]


def test_messages_are_bounded_and_single_line() -> None:
    long = VmReading(inventory=inventory(1, platform="Linux\n" + "x" * 500), track="guest")
    assert len(entry(long)["message"]) <= 256
    assert "\n" not in entry(long)["message"]
