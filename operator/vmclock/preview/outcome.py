"""A plan in the words a reviewer needs: per VM, what applying the policy would do and why.

The engine's `Plan` speaks in phases and writes; a reviewer of a pull request asks other questions: which
VMs change and from which track, which are already right, which belong to another policy, where the change
is inert (non-Windows platforms: ZStack stores the track but never emits it) and which would wait for a
restart (running now: the track is applied at the next start).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING

from vmclock.engine.plan import (
    HAS_DESIRED_TRACK,
    Phase,
    Plan,
    PolicyClaim,
    RestorePlan,
    RestoreStep,
    VmPlan,
    VmReading,
)
from vmclock.engine.report import RUNNING
from vmclock.zstack.models import Track

if TYPE_CHECKING:
    from vmclock.preview.planner import Proposed


class Action(StrEnum):
    CHANGE = "change"  # would be written to the policy's track
    RESTORE = "restore"  # selected no more by a Restore policy: put back to its previous track
    IN_SYNC = "inSync"  # already on the policy's track
    NOT_WRITTEN = "notWritten"  # differs, but the policy is Observe or paused: reported, never written
    OWNED = "ownedElsewhere"  # another policy owns it (older, or naming it by UUID)
    NOT_FOUND = "notFound"  # no such VM in ZStack
    UNREADABLE = "unreadable"  # ZStack could not tell its track now: the plan is incomplete


WRITES = frozenset({Action.CHANGE, Action.RESTORE})


@dataclass(frozen=True)
class VmPreview:
    uuid: str
    action: Action
    name: str = ""
    platform: str = ""
    state: str = ""
    current: Track | None = None  # the track ZStack reports now
    target: Track | None = None  # the track it would get (CHANGE, RESTORE) or keeps differing from
    inert: bool = False  # the platform ignores the track (ZStack emits it only for Windows platforms)
    pending_restart: bool = False  # written while running: takes effect at the next start
    owner: str = ""  # the policy that owns it instead ("a policy in another namespace" across tenants)
    owner_track: Track | None = None
    error: str = ""


@dataclass(frozen=True)
class ClusterDiff:
    """How the policy's VMs differ from what its version in the cluster manages now."""

    exists: bool
    track_before: Track | None = None
    added: tuple[str, ...] = ()
    released: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicyPreview:
    namespace: str
    name: str
    source: str
    track: Track
    by_selector: bool
    management_policy: str
    deletion_policy: str
    paused: bool
    matched: int  # VMs the selector matched (UUID policy: VMs listed)
    vms: tuple[VmPreview, ...]
    diff: ClusterDiff | None = field(default=None)

    def count(self, action: Action) -> int:
        return sum(1 for vm in self.vms if vm.action is action)

    @property
    def counts(self) -> dict[str, int]:
        found = Counter(vm.action.value for vm in self.vms)
        return {action.value: found.get(action.value, 0) for action in Action}

    @property
    def writes(self) -> int:
        return sum(1 for vm in self.vms if vm.action in WRITES)

    @property
    def inert(self) -> int:
        return sum(1 for vm in self.vms if vm.inert and vm.action is not Action.NOT_FOUND)

    @property
    def pending_restart(self) -> int:
        return sum(1 for vm in self.vms if vm.pending_restart)


def _seen(
    uuid: str,
    reading: VmReading,
    action: Action,
    target: Track | None,
    *,
    owner: PolicyClaim | None = None,
    error: str = "",
) -> VmPreview:
    """One VM with what ZStack reported of it (nothing more than its UUID when it was not found)."""
    inventory = reading.inventory
    preview = VmPreview(
        uuid,
        action,
        current=reading.track,
        target=target,
        owner=owner.ref if owner is not None else "",
        owner_track=owner.track if owner is not None else None,
        error=error,
    )
    if inventory is None:
        return preview
    return replace(
        preview,
        name=inventory.name,
        platform=inventory.platform,
        state=inventory.state,
        inert=not inventory.track_takes_effect,
        pending_restart=action in WRITES and inventory.state == RUNNING,
    )


def _selected(vm: VmPlan, track: Track) -> VmPreview:
    if vm.owner is not None:
        return _seen(vm.uuid, vm.reading, Action.OWNED, track, owner=vm.owner)
    if vm.write is not None:
        return _seen(vm.uuid, vm.reading, Action.CHANGE, track)
    if vm.phase.value in HAS_DESIRED_TRACK:
        return _seen(vm.uuid, vm.reading, Action.IN_SYNC, track)
    if vm.phase is Phase.DRIFTED:
        return _seen(vm.uuid, vm.reading, Action.NOT_WRITTEN, track)
    if vm.phase is Phase.NOT_FOUND:
        return _seen(vm.uuid, vm.reading, Action.NOT_FOUND, track)
    return _seen(vm.uuid, vm.reading, Action.UNREADABLE, track, error=str(vm.reading.error or ""))


_RESTORE_ACTIONS = {
    RestoreStep.WRITE: Action.RESTORE,
    RestoreStep.DEFERRED: Action.NOT_WRITTEN,
    RestoreStep.UNREADABLE: Action.UNREADABLE,
}


def _restored(restore: RestorePlan) -> VmPreview | None:
    action = _RESTORE_ACTIONS.get(restore.step)  # DONE: nothing to do (back already, gone or handed over)
    if action is None:
        return None
    error = str(restore.reading.error or "") if action is Action.UNREADABLE else ""
    return _seen(restore.uuid, restore.reading, action, restore.track, error=error)


def describe(
    proposed: Proposed,
    plan: Plan,
    readings: Mapping[str, VmReading],
    excepted: Mapping[str, PolicyClaim],
    *,
    matched: int,
    diff: ClusterDiff | None = None,
) -> PolicyPreview:
    """`excepted`: VMs a selector matched that UUID policies take, with the policy naming each."""
    spec, state = proposed.spec, proposed.state
    vms = [_selected(vm, spec.track) for vm in plan.vms]
    vms += [
        _seen(uuid, readings.get(uuid, VmReading()), Action.OWNED, spec.track, owner=owner)
        for uuid, owner in sorted(excepted.items())
    ]
    vms += [vm for restore in plan.restores if (vm := _restored(restore)) is not None]
    return PolicyPreview(
        namespace=state.namespace,
        name=state.name,
        source=proposed.source,
        track=spec.track,
        by_selector=spec.selector is not None,
        management_policy=spec.management_policy,
        deletion_policy=spec.deletion_policy,
        paused=state.paused,
        matched=matched,
        vms=tuple(vms),
        diff=diff,
    )
