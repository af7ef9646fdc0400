"""Plan: pure decisions from what was read. No I/O, no clock, no Kubernetes.

Everything a reconcile decides lives here, in the order a reader meets it: the per-VM phases and write
purposes, a VM as observed, what the last status remembered, who owns a VM when several policies select it,
which VMs to write, which to put back, and how the previous-track record moves around those writes. The
reconcile (reconcile.py) reads through external.py, decides here, and reports through report.py.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from vmclock.engine.pending import UNKNOWN_MARK, PendingRestart, op_mark
from vmclock.engine.spec import PolicySpec
from vmclock.zstack.errors import ZStackError
from vmclock.zstack.models import TRACKS, Track, VmInventory

# --- phases and write purposes ------------------------------------------------------------------------------
# Per-VM phases and write purposes, as spelled in the CRD (docs/api.md "Phases").


class Phase(StrEnum):
    IN_SYNC = "InSync"
    APPLIED = "Applied"
    DRIFTED = "Drifted"
    PENDING = "Pending"
    FAILED = "Failed"
    NOT_FOUND = "NotFound"
    CONFLICT = "Conflict"


HAS_DESIRED_TRACK = frozenset({Phase.IN_SYNC.value, Phase.APPLIED.value})


def failure_phase(error: ZStackError) -> Phase:
    """The phase of a VM whose read or write failed: retryable trouble is only Pending."""
    if error.not_found:
        return Phase.NOT_FOUND
    return Phase.PENDING if error.retryable else Phase.FAILED


class Purpose(StrEnum):
    """Why a track is written; decides which Event reports the write."""

    APPLY = "apply"  # first time this policy (or this generation) brings the VM to the desired track
    DRIFT = "drift"  # the VM had the desired track and someone changed it behind our back
    RESTORE = "restore"  # put back the track the VM had before this policy changed it


@dataclass(frozen=True)
class Write:
    uuid: str
    track: Track
    purpose: Purpose


@dataclass(frozen=True, slots=True)  # one per VM in each connection's cache of readings
class VmReading:
    """One VM as observed: found with a track, not found, or unreadable (error)."""

    inventory: VmInventory | None = None
    track: Track | None = None
    error: ZStackError | None = None

    @property
    def found(self) -> bool:
        return self.inventory is not None


@dataclass(frozen=True)
class WriteOutcome:
    write: Write
    inventory: VmInventory | None = None  # what ZStack reported after a successful write
    error: ZStackError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


# --- what the last status remembered ------------------------------------------------------------------------
# What the last written status said, parsed leniently.
#
# Status is the engine's memory of the VMs it lists: `previousTrack` (for Restore), `lastAppliedTime`,
# `pendingRestart` (since when) and the last seen `lastOpDate` live there; the record (records.py,
# pending.py) keeps previous tracks and pending restarts for every VM, listed or not (`with_record`).
# Anything malformed is read as "unknown" rather than failing the reconcile, since status can be edited by
# hand or written by an older operator version.


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
    op_mark: str = UNKNOWN_MARK  # restarts.op_mark of the lastOpDate last seen
    pending_since: str | None = None  # when it started waiting for a restart (None: not waiting)

    @classmethod
    def from_status(cls, entry: Mapping[str, Any]) -> PreviousVm:
        error = entry.get("error")
        inventory = entry.get("inventory")
        pending = entry.get("pendingRestart") is True
        # A status written before pendingRestartSince existed: the write that left it waiting is the last one
        since = _text(entry.get("pendingRestartSince")) or _text(entry.get("lastAppliedTime"))
        return cls(
            uuid=str(entry["uuid"]),
            phase=_text(entry.get("phase")),
            observed_track=_track(entry.get("observedTrack")),
            previous_track=_track(entry.get("previousTrack")),
            last_applied_time=_text(entry.get("lastAppliedTime")),
            pending_restart=pending,
            error_code=_text(error.get("code")) if isinstance(error, Mapping) else None,
            op_mark=op_mark(_text(inventory.get("lastOpDate")) if isinstance(inventory, Mapping) else None),
            pending_since=since if pending else None,
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


# --- who owns a VM ------------------------------------------------------------------------------------------
# Which policy owns a VM when several select it.
#
# Two policies that want different tracks for one VM would flip it back and forth forever. The rule that
# stops
# this is age: the older policy (creationTimestamp, then namespace/name as a stable tie-break) owns the VM;
# a
# younger one that wants another track reports `Conflict` and never writes it. Policies that agree on the
# track
# do not conflict. A policy being deleted still owns its VMs until it is gone, so that its `Restore`
# finishes
# before a younger policy takes over.

OTHER_NAMESPACE = "a policy in another namespace"


@dataclass(frozen=True)
class PolicyClaim:
    """What one policy asks for, as far as ownership is concerned."""

    namespace: str
    name: str
    created: datetime
    track: Track
    vm_uuids: frozenset[str]
    deleting: bool = False
    enforce: bool = True
    paused: bool = False
    connection: str = "default"
    found: frozenset[str] | None = None  # VMs its last observation found (None: not known yet)
    label: str = ""  # how it is named to the policy looking at it (see `seen_by`)
    by_selector: bool = False  # spec.selector: `vm_uuids` is what it last resolved to
    matched: frozenset[str] = frozenset()  # a selector policy's whole match, with the VMs it leaves to
    # UUID policies (design.md §2): it owns none of those, yet it still wants them once they are free

    @property
    def wanted(self) -> frozenset[str]:
        """Every VM this policy would take: whoever shares one must look again when the VM changes hands,
        and a restore must not take it from under the policy (ownership itself counts `vm_uuids` only)."""
        return self.vm_uuids | self.matched if self.matched else self.vm_uuids

    @property
    def ref(self) -> str:
        return self.label or f"{self.namespace}/{self.name}"

    def seen_by(self, namespace: str) -> PolicyClaim:
        """This claim as shown to a policy of `namespace`: a policy of another tenant stays anonymous
        (design.md §6.4), in status, Events and logs alike."""
        label = f"{self.namespace}/{self.name}" if namespace == self.namespace else OTHER_NAMESPACE
        return replace(self, label=label)

    def backed(self) -> PolicyClaim | None:
        """The part of this claim that counts for ownership (design.md §6.3): only an Enforce policy that
        is not paused, and only for VMs its own last observation found. Whether its connection is Ready and
        reaches the same management node is the caller's to check (it knows the connections)."""
        if not self.enforce or self.paused or self.found is None:
            return None
        if self.vm_uuids <= self.found:
            return self  # the usual case, and cheap: a reconcile asks this of every policy after a start
        return replace(self, vm_uuids=self.vm_uuids & self.found)

    @property
    def seniority(self) -> tuple[datetime, str, str]:
        """Smaller is older; the namespace/name tie-break makes the order total and stable."""
        return (self.created, self.namespace, self.name)

    def same_policy(self, other: PolicyClaim) -> bool:
        return (self.namespace, self.name) == (other.namespace, other.name)


Others = Callable[[Collection[str]], Sequence[PolicyClaim]]
"""The other policies' claims that touch any of these VMs (a superset is fine: every rule below only looks
at the VMs a claim shares with the ones asked about). A reconcile asks once it knows its VMs, so the
caller's index answers in proportion to those VMs, not to the cluster's policies."""


def conflicting_owners(me: PolicyClaim, others: Iterable[PolicyClaim]) -> dict[str, PolicyClaim]:
    """For each of my VMs owned by an older policy that wants another track: that owner (the oldest one)."""
    owners: dict[str, PolicyClaim] = {}
    for other in others:
        if other.same_policy(me) or other.seniority >= me.seniority:
            continue
        for uuid in other.vm_uuids & me.vm_uuids:
            current = owners.get(uuid)
            if current is None or other.seniority < current.seniority:
                owners[uuid] = other
    return {uuid: owner for uuid, owner in owners.items() if owner.track != me.track}


def owned_by_others(me: PolicyClaim, others: Iterable[PolicyClaim]) -> frozenset[str]:
    """My VMs another policy takes precedence for (an older rival, or a UUID policy over a selector one),
    whatever track it wants: two policies that agree share a VM without a Conflict, yet only its owner may
    reboot it, or it would be rebooted once per policy."""
    rivals, exceptions = rivals_and_exceptions(me, others)
    older = [o for o in rivals if not o.same_policy(me) and o.seniority < me.seniority]
    return frozenset().union(exceptions, *(o.vm_uuids for o in older)) & me.vm_uuids


def rivals_and_exceptions(
    me: PolicyClaim, others: Iterable[PolicyClaim]
) -> tuple[list[PolicyClaim], frozenset[str]]:
    """Precedence (design.md §2): a policy naming a VM by UUID beats any selector policy for it, without a
    Conflict (the exception wins over the rule). So the age rule of `conflicting_owners` only runs among
    policies of my kind (the rivals), and a selector policy leaves alone every VM a UUID policy names
    (the exceptions; always empty for a UUID policy)."""
    rivals = [o for o in others if o.by_selector == me.by_selector]
    exceptions: frozenset[str] = frozenset()
    if me.by_selector:
        exceptions = frozenset().union(*(o.vm_uuids for o in others if not o.by_selector))
    return rivals, exceptions


def selected_elsewhere(
    uuids: Iterable[str], me_ref: tuple[str, str], others: Iterable[PolicyClaim]
) -> set[str]:
    """VMs that a live (not deleting) other policy still selects: restoring them would start a tug of war."""
    wanted = frozenset(uuids)
    return {uuid for o in overlapping(wanted, me_ref, others) if not o.deleting for uuid in o.wanted & wanted}


def overlapping(
    uuids: Iterable[str], me_ref: tuple[str, str], others: Iterable[PolicyClaim]
) -> list[PolicyClaim]:
    """Policies sharing a VM with `uuids`: they re-evaluate ownership when this policy changes or goes."""
    wanted = frozenset(uuids)
    return [o for o in others if (o.namespace, o.name) != me_ref and o.wanted & wanted]


def describe_owner(owner: PolicyClaim) -> str:
    who = (
        "an older policy in another namespace"
        if owner.ref == OTHER_NAMESPACE
        else f"older policy {owner.ref}"
    )
    return f"owned by {who} which wants track {owner.track}"


# --- putting VMs back ---------------------------------------------------------------------------------------
# Restore: put VMs back to the track they had before this policy first changed them.
#
# Used for a `Restore` policy's deletion and for VMs removed from its `spec.vmUuids`. A VM is restored only
# when it is still there, its track differs from the recorded `previousTrack`, the policy is not paused, and
# no
# other live policy selects it (handing the VM over is better than a write the other policy would undo).


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
    rewrite: Collection[str] = (),
) -> list[RestorePlan]:
    """`targets` maps each VM to its recorded previousTrack; `elsewhere`: VMs the record says were changed
    through another management node or account than the one asked now. Such a VM that is not found here
    is not restored (it may well exist there): it waits, and the record keeps it. `rewrite`: VMs whose
    forward write may still be running in ZStack (its wait was cut at a deadline): a reading of the previous
    track proves nothing there, so they are written back all the same (ZStack runs a VM's jobs in order)."""
    plans: list[RestorePlan] = []
    for uuid, track in sorted(targets.items()):
        reading = readings.get(uuid, VmReading())
        gone = reading.error.not_found if reading.error is not None else not reading.found
        already = reading.error is None and reading.track == track and uuid not in rewrite
        if gone and uuid in elsewhere and uuid not in handed_over:
            step = RestoreStep.ELSEWHERE
        elif uuid in handed_over or gone or already:
            step = RestoreStep.DONE
        elif reading.error is not None:
            step = RestoreStep.UNREADABLE
        elif paused:
            step = RestoreStep.DEFERRED
        else:
            step = RestoreStep.WRITE
        plans.append(RestorePlan(uuid, track, step, reading))
    return plans


# --- what to write ------------------------------------------------------------------------------------------
# Plan: from the readings, decide each selected VM's phase and which VMs to write.
#
# Pure: no I/O. Only VMs whose observed track differs are written, and none when the policy is in `Observe`
# mode, paused, or when an older policy owns the VM with another track. A VM that was in sync under this
# policy and now differs is drift (reported, and in `Enforce` corrected).


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


def with_record(
    previous: Mapping[str, PreviousVm],
    record: Mapping[str, Track],
    restarts: Mapping[str, PendingRestart] | None = None,
) -> dict[str, PreviousVm]:
    """Status memory of the listed VMs, with the record as the truth for every previousTrack, and every VM
    the record says waits for a restart (listed or not) waiting since the time it says. A VM only the status
    says waits (written by an operator that kept it only there) still waits: forgetting a wait is the
    error that matters, and a wrong one clears at the next look by the same rule."""
    merged = {uuid: replace(vm, previous_track=record.get(uuid)) for uuid, vm in previous.items()}
    for uuid, track in record.items():
        if uuid not in merged:
            merged[uuid] = PreviousVm(uuid=uuid, previous_track=track)
    for uuid, waiting in (restarts or {}).items():
        known = merged.get(uuid) or PreviousVm(uuid=uuid, previous_track=record.get(uuid))
        mark = waiting.mark if waiting.mark != UNKNOWN_MARK else known.op_mark
        merged[uuid] = replace(known, pending_restart=True, pending_since=waiting.since, op_mark=mark)
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
