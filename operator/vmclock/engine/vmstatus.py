"""One `status.vms[]` entry per VM: phase, tracks, restart hint, error and a compact inventory.

`previousTrack` is recorded the first time this policy writes a VM and then carried forward; it is what
`Restore` puts back. `pendingRestart` follows ZStack's semantics: the track is read only when the VM's domain
is rebuilt (next start or a ZStack reboot) and only for Windows platforms, so it is set when a running
Windows VM was changed and cleared once the VM is seen not running or its `lastOpDate` moves on.
"""

from __future__ import annotations

from typing import Any

from vmclock.engine.apply import WriteOutcome
from vmclock.engine.conditions import one_line
from vmclock.engine.observation import VmReading
from vmclock.engine.ownership import describe_owner
from vmclock.engine.phases import Phase, failure_phase
from vmclock.engine.planning import VmPlan
from vmclock.engine.previous import PreviousVm
from vmclock.engine.restore import RestorePlan, RestoreStep
from vmclock.zstack.errors import ZStackError
from vmclock.zstack.models import Track, VmInventory

MAX_VM_MESSAGE = 256
RUNNING = "Running"
RESTART_HINT = "the track takes effect at the VM's next start or ZStack reboot"


def platform_advisory(inventory: VmInventory) -> str | None:
    if inventory.track_takes_effect:
        return None
    platform = inventory.platform or "unknown"
    return f"platform {platform}: ZStack stores the track but applies it only to Windows/WindowsVirtio VMs"


def _pending_restart(
    previous: PreviousVm | None, before: VmInventory | None, after: VmInventory | None, *, wrote: bool
) -> bool:
    if wrote:
        return before is not None and before.state == RUNNING and before.track_takes_effect
    if previous is None or not previous.pending_restart:
        return False
    if after is None:
        return True  # not readable this time: keep what we knew
    if after.state != RUNNING:
        return False
    last_seen = previous.inventory.get("lastOpDate")
    return not (last_seen and after.last_op_date and last_seen != after.last_op_date)


def _entry(
    uuid: str,
    phase: Phase,
    *,
    observed: Track | None,
    previous_track: Track | None,
    last_applied: str | None,
    pending_restart: bool,
    messages: list[str],
    error: ZStackError | None,
    inventory: VmInventory | None,
    conflict_with: str | None = None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {"uuid": uuid, "phase": phase.value, "pendingRestart": pending_restart}
    optional: dict[str, Any] = {
        "observedTrack": observed,
        "previousTrack": previous_track,
        "lastAppliedTime": last_applied,
        "message": one_line("; ".join(messages), MAX_VM_MESSAGE) if messages else None,
        "conflictWith": conflict_with,
        "error": error.to_status() if error is not None else None,
        "inventory": inventory.to_status() if inventory is not None else None,
    }
    entry.update({k: v for k, v in optional.items() if v is not None})
    return entry


def selected_vm_entry(
    plan: VmPlan,
    outcome: WriteOutcome | None,
    previous: PreviousVm | None,
    *,
    desired: Track,
    now: str,
    unsent: str | None = None,
) -> dict[str, Any]:
    """`unsent`: why a planned write has not been sent (yet): the VM is Pending, and its previousTrack is
    recorded already, because this entry may be the intent saved before the write goes out."""
    reading = plan.reading
    phase, observed, inventory, error = plan.phase, reading.track, reading.inventory, reading.error
    previous_track = previous.previous_track if previous else None
    last_applied = previous.last_applied_time if previous else None
    messages: list[str] = []
    if outcome is None and unsent is not None and plan.write is not None:
        previous_track = previous_track or reading.track
        phase = Phase.PENDING
        messages.append(f"track {desired}: {unsent}")
    if outcome is not None:
        previous_track = previous_track or reading.track
        if outcome.error is None:
            phase, observed, error, last_applied = Phase.APPLIED, outcome.write.track, None, now
            inventory = outcome.inventory or inventory
        else:
            phase, error = failure_phase(outcome.error), outcome.error
            messages.append(f"writing track {desired} failed; retried at the next reconcile")
    wrote = outcome is not None and outcome.ok
    pending = _pending_restart(previous, reading.inventory, inventory, wrote=wrote)
    if plan.owner is not None:
        messages.append(describe_owner(plan.owner))
    elif phase is Phase.NOT_FOUND:
        messages.append("ZStack does not know this VM")
    elif phase is Phase.DRIFTED:
        messages.append(f"observed track {observed}, desired {desired}; not written (Observe mode or paused)")
    if inventory is not None and (advisory := platform_advisory(inventory)):
        messages.append(advisory)
    if pending:
        messages.append(RESTART_HINT)
    return _entry(
        plan.uuid,
        phase,
        observed=observed,
        previous_track=previous_track,
        last_applied=last_applied,
        pending_restart=pending,
        messages=messages,
        error=error,
        inventory=inventory,
        conflict_with=plan.owner.ref if plan.owner is not None else None,
    )


ELSEWHERE_WHY = (
    "it was changed through another management node or account than the connection reaches now, "
    "and is not found through this one"
)


def restore_entry(
    plan: RestorePlan, outcome: WriteOutcome | None, previous: PreviousVm | None
) -> dict[str, Any] | None:
    """An entry for a VM dropped from spec.vmUuids that still awaits its restore; None once it is done."""
    if plan.step is RestoreStep.DONE or (outcome is not None and outcome.ok):
        return None
    reading: VmReading = plan.reading
    error = outcome.error if outcome is not None else reading.error
    if plan.step is RestoreStep.DEFERRED:
        phase, why = Phase.PENDING, "deferred while the policy is paused"
    elif plan.step is RestoreStep.ELSEWHERE:
        phase, why = Phase.PENDING, f"waits: {ELSEWHERE_WHY}"
    else:
        phase, why = (
            (failure_phase(error), "failed; retried at the next reconcile")
            if error
            else (
                Phase.PENDING,
                "pending",
            )
        )
    return _entry(
        plan.uuid,
        phase,
        observed=reading.track,
        previous_track=plan.track,
        last_applied=previous.last_applied_time if previous else None,
        pending_restart=previous.pending_restart if previous else False,
        messages=[f"removed from spec.vmUuids; restore to track {plan.track} {why}"],
        error=error,
        inventory=reading.inventory,
    )
