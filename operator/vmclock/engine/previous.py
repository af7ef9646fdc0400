"""What the last written status said, parsed leniently.

Status is the engine's only memory between reconciles: `previousTrack` (for Restore), `lastAppliedTime`,
`pendingRestart` and the last seen `lastOpDate` live there. Anything malformed is read as "unknown" rather
than failing the reconcile, since status can be edited by hand or written by an older operator version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from vmclock.engine.conditions import find_condition
from vmclock.zstack.models import TRACKS, Track


def _track(value: Any) -> Track | None:
    return cast(Track, value) if value in TRACKS else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class PreviousVm:
    uuid: str
    phase: str | None = None
    observed_track: Track | None = None
    previous_track: Track | None = None
    last_applied_time: str | None = None
    pending_restart: bool = False
    error_code: str | None = None
    inventory: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_status(cls, entry: Mapping[str, Any]) -> PreviousVm:
        error = entry.get("error")
        inventory = entry.get("inventory")
        return cls(
            uuid=str(entry["uuid"]),
            phase=_text(entry.get("phase")),
            observed_track=_track(entry.get("observedTrack")),
            previous_track=_track(entry.get("previousTrack")),
            last_applied_time=_text(entry.get("lastAppliedTime")),
            pending_restart=entry.get("pendingRestart") is True,
            error_code=_text(error.get("code")) if isinstance(error, Mapping) else None,
            inventory=inventory if isinstance(inventory, Mapping) else {},
        )


def previous_vms(status: Mapping[str, Any]) -> dict[str, PreviousVm]:
    entries = status.get("vms")
    if not isinstance(entries, list):
        return {}
    parsed = (
        PreviousVm.from_status(e)
        for e in entries
        if isinstance(e, Mapping) and isinstance(e.get("uuid"), str)
    )
    return {vm.uuid: vm for vm in parsed}


def previous_generation(status: Mapping[str, Any]) -> int | None:
    value = status.get("observedGeneration")
    return value if isinstance(value, int) else None


def condition_reason(status: Mapping[str, Any], kind: str) -> str | None:
    condition = find_condition(status.get("conditions"), kind)
    return _text(condition.get("reason")) if condition else None


def found_vms(status: Mapping[str, Any]) -> frozenset[str] | None:
    """VMs the policy's last observation found (an observed track, or an inventory, in its status entry);
    None before its first reconcile wrote any VM entry."""
    entries = status.get("vms")
    if not isinstance(entries, list):
        return None
    return frozenset(
        str(e["uuid"])
        for e in entries
        if isinstance(e, Mapping)
        and isinstance(e.get("uuid"), str)
        and (e.get("observedTrack") or e.get("inventory"))
    )
