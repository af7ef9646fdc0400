"""Restore: put VMs back to the track they had before this policy first changed them.

Used for a `Restore` policy's deletion and for VMs removed from its `spec.vmUuids`. A VM is restored only
when it is still there, its track differs from the recorded `previousTrack`, the policy is not paused, and no
other live policy selects it (handing the VM over is better than a write the other policy would undo).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum

from vmclock.engine.observation import VmReading
from vmclock.engine.phases import Purpose, Write
from vmclock.zstack.models import Track


class RestoreStep(StrEnum):
    WRITE = "write"  # write previousTrack now
    DONE = "done"  # nothing to do: already restored, VM gone, or handed over
    DEFERRED = "deferred"  # paused: keep the record and restore once resumed
    UNREADABLE = "unreadable"  # could not read the VM; keep the record and retry
    ELSEWHERE = "elsewhere"  # changed through another destination and not found through this one: keep it


@dataclass(frozen=True)
class RestorePlan:
    uuid: str
    track: Track
    step: RestoreStep
    reading: VmReading

    @property
    def write(self) -> Write | None:
        return Write(self.uuid, self.track, Purpose.RESTORE) if self.step is RestoreStep.WRITE else None


def plan_restores(
    targets: Mapping[str, Track],
    readings: Mapping[str, VmReading],
    *,
    paused: bool,
    handed_over: set[str],
    elsewhere: Collection[str] = (),
) -> list[RestorePlan]:
    """`targets` maps each VM to its recorded previousTrack; `elsewhere`: VMs the record says were changed
    through another management node or account than the one asked now. Such a VM that is not found here
    is not restored (it may well exist there): it waits, and the record keeps it."""
    plans: list[RestorePlan] = []
    for uuid, track in sorted(targets.items()):
        reading = readings.get(uuid, VmReading())
        gone = reading.error.not_found if reading.error is not None else not reading.found
        if gone and uuid in elsewhere and uuid not in handed_over:
            step = RestoreStep.ELSEWHERE
        elif uuid in handed_over or gone or (reading.error is None and reading.track == track):
            step = RestoreStep.DONE
        elif reading.error is not None:
            step = RestoreStep.UNREADABLE
        elif paused:
            step = RestoreStep.DEFERRED
        else:
            step = RestoreStep.WRITE
        plans.append(RestorePlan(uuid, track, step, reading))
    return plans
