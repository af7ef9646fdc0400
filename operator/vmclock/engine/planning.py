"""Plan: from the readings, decide each selected VM's phase and which VMs to write.

Pure: no I/O. Only VMs whose observed track differs are written, and none when the policy is in `Observe`
mode, paused, or when an older policy owns the VM with another track. A VM that was in sync under this
policy and now differs is drift (reported, and in `Enforce` corrected).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from vmclock.engine.observation import VmReading
from vmclock.engine.ownership import PolicyClaim
from vmclock.engine.phases import HAS_DESIRED_TRACK, Phase, Purpose, Write, failure_phase
from vmclock.engine.previous import PreviousVm
from vmclock.engine.restore import RestorePlan, plan_restores
from vmclock.engine.spec import PolicySpec
from vmclock.zstack.models import Track


@dataclass(frozen=True)
class VmPlan:
    uuid: str
    reading: VmReading
    phase: Phase  # the phase if nothing is written; a write's outcome replaces it
    write: Write | None = None
    drift: bool = False  # had the desired track under this policy, now differs
    owner: PolicyClaim | None = None  # the older policy this VM conflicts with


@dataclass(frozen=True)
class Plan:
    vms: tuple[VmPlan, ...]
    restores: tuple[RestorePlan, ...] = ()

    @property
    def writes(self) -> list[Write]:
        found = [p.write for p in self.vms] + [r.write for r in self.restores]
        return [w for w in found if w is not None]


def _plan_vm(
    uuid: str,
    spec: PolicySpec,
    reading: VmReading,
    previous: PreviousVm | None,
    *,
    may_write: bool,
    same_generation: bool,
    owner: PolicyClaim | None,
) -> VmPlan:
    if owner is not None:
        return VmPlan(uuid, reading, Phase.CONFLICT, owner=owner)
    if reading.error is not None:
        return VmPlan(uuid, reading, failure_phase(reading.error))
    if not reading.found:
        return VmPlan(uuid, reading, Phase.NOT_FOUND)
    if reading.track == spec.track:
        kept_applied = same_generation and previous is not None and previous.phase == Phase.APPLIED.value
        return VmPlan(uuid, reading, Phase.APPLIED if kept_applied else Phase.IN_SYNC)
    drift = (
        previous is not None and previous.phase in HAS_DESIRED_TRACK and previous.observed_track == spec.track
    )
    write = Write(uuid, spec.track, Purpose.DRIFT if drift else Purpose.APPLY) if may_write else None
    return VmPlan(uuid, reading, Phase.DRIFTED, write=write, drift=drift)


def restore_targets(
    previous: Mapping[str, PreviousVm], uuids: Sequence[str] | None = None
) -> dict[str, Track]:
    """VMs (all, or those in `uuids`) with a recorded previousTrack, i.e. ones this policy changed."""
    chosen = previous.values() if uuids is None else (previous[u] for u in uuids if u in previous)
    return {vm.uuid: vm.previous_track for vm in chosen if vm.previous_track is not None}


def dropped_targets(spec: PolicySpec, previous: Mapping[str, PreviousVm]) -> dict[str, Track]:
    """What a live `Restore` policy puts back: VMs it changed and no longer selects (none for `Orphan`)."""
    if not spec.restore:
        return {}
    selected = set(spec.vm_uuids)
    return restore_targets(previous, [uuid for uuid in previous if uuid not in selected])


def plan_policy(
    spec: PolicySpec,
    readings: Mapping[str, VmReading],
    previous: Mapping[str, PreviousVm],
    *,
    paused: bool,
    same_generation: bool,
    owners: Mapping[str, PolicyClaim],
    restore_to: Mapping[str, Track],
    handed_over: set[str],
    uuids: Sequence[str] | None = None,
    elsewhere: Collection[str] = (),
) -> Plan:
    """`owners`: conflicting older policy per VM; `restore_to`: `dropped_targets` (the caller has already
    read those VMs); `handed_over`: dropped VMs another policy still selects; `uuids`: the VMs to plan
    (default spec.vmUuids; a selector policy passes what its selector resolved to)."""
    may_write = spec.enforce and not paused
    vms = tuple(
        _plan_vm(
            uuid,
            spec,
            readings.get(uuid, VmReading()),
            previous.get(uuid),
            may_write=may_write,
            same_generation=same_generation,
            owner=owners.get(uuid),
        )
        for uuid in (spec.vm_uuids if uuids is None else uuids)
    )
    restores = tuple(
        plan_restores(restore_to, readings, paused=paused, handed_over=handed_over, elsewhere=elsewhere)
    )
    return Plan(vms=vms, restores=restores)
