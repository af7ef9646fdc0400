"""A 1000-VM status stays within 256 KiB, shedding detail of healthy VMs first."""

from __future__ import annotations

from typing import Any

from vmclock.engine.report import STATUS_BUDGET, bound_status, status_size

from .helpers import NOW_TEXT, uuid


def full_entry(n: int, phase: str, *, pending_restart: bool = False) -> dict[str, Any]:
    return {
        "uuid": uuid(n),
        "phase": phase,
        "observedTrack": "guest",
        "previousTrack": "host",
        "lastAppliedTime": NOW_TEXT,
        "pendingRestart": pending_restart,
        "message": "the track takes effect at the VM's next start or ZStack reboot",
        "inventory": {
            "uuid": uuid(n),
            "name": f"windows-server-2022-production-{n:05d}",
            "state": "Running",
            "platform": "WindowsVirtio",
            "hypervisorType": "KVM",
            "zoneUuid": uuid(10_000 + n),
            "clusterUuid": uuid(20_000 + n),
            "hostUuid": uuid(30_000 + n),
            "cpuNum": 16,
            "memorySize": 68719476736,
            "lastOpDate": "Dec 31, 2026 11:59:59 PM",
        },
    }


def status_of(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"observedGeneration": 1, "conditions": [], "summary": {"total": len(entries)}, "vms": entries}


def test_small_statuses_are_untouched() -> None:
    status = status_of([full_entry(n, "Applied") for n in range(10)])
    assert bound_status(status) == status


def test_a_thousand_vms_fit_and_problem_vms_keep_their_detail() -> None:
    entries = [full_entry(n, "Applied", pending_restart=n % 2 == 0) for n in range(990)]
    entries += [
        {**full_entry(n, "Failed"), "error": {"code": "SYS.1007", "details": "d" * 500}}
        for n in range(990, 1000)
    ]
    status = status_of(entries)
    assert status_size(status) > STATUS_BUDGET
    bounded = bound_status(status)
    assert status_size(bounded) <= STATUS_BUDGET
    by_uuid = {e["uuid"]: e for e in bounded["vms"]}
    assert by_uuid[uuid(999)] == entries[-1]
    assert set(by_uuid[uuid(0)]["inventory"]) >= {"state", "lastOpDate"}  # pendingRestart needs them
    assert len(bounded["vms"]) == 1000


def test_even_a_thousand_failing_vms_fit() -> None:
    entries = [
        {
            **full_entry(n, "Failed"),
            "error": {"code": "SYS.1007", "description": "x" * 256, "details": "d" * 512},
        }
        for n in range(1000)
    ]
    bounded = bound_status(status_of(entries))
    assert status_size(bounded) <= STATUS_BUDGET
    assert all(e["error"]["code"] == "SYS.1007" for e in bounded["vms"])
