"""What is particular to a selector policy, as pure functions: its previous-track record, its bounded
`status.vms` and its `status.selector`.

- Record (see `records.py`): a VM enters it just before this policy first writes it (its track at that
  moment) and leaves it once the policy has nothing more to do for it: it is selected no more and was
  restored, handed over, deleted in ZStack, or the policy is `Orphan` (the VM is forgotten).
- Status: `status.summary` and the conditions count every VM, but `status.vms` lists at most
  `MAX_LISTED` entries, those that need attention first (not in sync, pending restart, conflicted), then
  the rest by UUID, and `status.selector.omitted` says how many were left out. The order is stable, so an
  unchanged selection writes an unchanged status. A listed VM keeps its per-VM memory (pendingRestart,
  lastOpDate, drift detection) from round to round; an omitted one has only its record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from vmclock.engine.apply import WriteOutcome
from vmclock.engine.observation import VmReading
from vmclock.engine.phases import HAS_DESIRED_TRACK, Purpose, Write
from vmclock.engine.previous import PreviousVm
from vmclock.engine.restore import RestorePlan, RestoreStep
from vmclock.zstack.models import Track

MAX_LISTED = 500  # well under the CRD's maxItems 2000 and, with full entries, near the 256 KiB budget


@dataclass(frozen=True)
class Selection:
    """One resolution of spec.selector: `readings` of the VMs the policy manages, `matched` (all the
    selector picked) and how many of them policies naming them by UUID took (`excepted`)."""

    readings: Mapping[str, VmReading]
    matched: int
    excepted: int

    @property
    def uuids(self) -> tuple[str, ...]:
        return tuple(sorted(self.readings))

    def status(self, stamp: str, omitted: int) -> dict[str, Any]:
        message = (
            f"{self.excepted} matched VMs are left to policies that list them in spec.vmUuids"
            if self.excepted
            else ""
        )
        return {"matched": self.matched, "resolvedAt": stamp, "omitted": omitted, "message": message}


def with_record(previous: Mapping[str, PreviousVm], record: Mapping[str, Track]) -> dict[str, PreviousVm]:
    """Status memory of the listed VMs, with the record as the truth for every previousTrack."""
    merged = {uuid: replace(vm, previous_track=record.get(uuid)) for uuid, vm in previous.items()}
    for uuid, track in record.items():
        if uuid not in merged:
            merged[uuid] = PreviousVm(uuid=uuid, previous_track=track)
    return merged


def record_before(
    record: Mapping[str, Track],
    writes: Iterable[Write],
    readings: Mapping[str, VmReading],
    origins: Mapping[str, str],
    destination: str,
) -> tuple[dict[str, Track], dict[str, str]]:
    """The record to store before `writes` go out: each VM written for the first time, with its track now
    and the destination the write goes through."""
    wanted, by = dict(record), dict(origins)
    for write in writes:
        track = readings[write.uuid].track if write.uuid in readings else None
        if write.purpose is not Purpose.RESTORE and write.uuid not in wanted and track is not None:
            wanted[write.uuid] = track
            by[write.uuid] = destination
    return wanted, by


def record_after(
    record: Mapping[str, Track],
    selected: Iterable[str],
    restores: Sequence[RestorePlan],
    outcomes: Mapping[str, WriteOutcome],
) -> dict[str, Track]:
    """Forget the VMs this policy is done with: not selected and not awaiting a restore."""
    waiting = {
        r.uuid
        for r in restores
        if r.step is not RestoreStep.DONE and not ((o := outcomes.get(r.uuid)) is not None and o.ok)
    }
    keep = set(selected) | waiting
    return {uuid: track for uuid, track in record.items() if uuid in keep}


def _needs_attention(entry: Mapping[str, Any]) -> bool:
    return entry.get("phase") not in HAS_DESIRED_TRACK or entry.get("pendingRestart") is True


def listed_first(
    entries: Sequence[dict[str, Any]], bound: int = MAX_LISTED
) -> tuple[list[dict[str, Any]], int]:
    """At most `bound` entries, those needing attention first, each group by UUID; and how many were left."""
    ordered = sorted(entries, key=lambda e: (not _needs_attention(e), str(e.get("uuid"))))
    return ordered[:bound], max(0, len(ordered) - bound)
