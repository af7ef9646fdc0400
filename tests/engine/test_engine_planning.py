"""Planning table: what a VM's phase is and whether it is written, for each situation."""

from __future__ import annotations

import pytest

from vmclock.engine.plan import (
    Phase,
    PreviousVm,
    Purpose,
    RestoreStep,
    VmReading,
    dropped_targets,
    plan_policy,
)
from vmclock.engine.spec import PolicySpec

from .helpers import claim, failed_reading, previous, reading, uuid

ENFORCE = PolicySpec(track="guest", vm_uuids=(uuid(1),))
OBSERVE = PolicySpec(track="guest", vm_uuids=(uuid(1),), management_policy="Observe")
RESTORE = PolicySpec(track="guest", vm_uuids=(uuid(1),), deletion_policy="Restore")
OWNER = claim("older", "host", 1)


@pytest.mark.parametrize(
    ("spec", "vm", "before", "paused", "same_gen", "owned", "phase", "purpose"),
    [
        # in sync: nothing to write
        (ENFORCE, reading(1, "guest"), None, False, True, False, Phase.IN_SYNC, None),
        # Applied sticks for the generation it was written in, then becomes InSync
        (ENFORCE, reading(1, "guest"), previous(1, phase="Applied"), False, True, False, Phase.APPLIED, None),
        (
            ENFORCE,
            reading(1, "guest"),
            previous(1, phase="Applied"),
            False,
            False,
            False,
            Phase.IN_SYNC,
            None,
        ),
        # differs, never in sync before: first apply
        (ENFORCE, reading(1, "host"), None, False, True, False, Phase.DRIFTED, Purpose.APPLY),
        # was in sync under this policy, now differs: drift
        (
            ENFORCE,
            reading(1, "host"),
            previous(1, phase="InSync", observed_track="guest"),
            False,
            True,
            False,
            Phase.DRIFTED,
            Purpose.DRIFT,
        ),
        # a spec change of track is not drift
        (
            ENFORCE,
            reading(1, "host"),
            previous(1, phase="InSync", observed_track="host"),
            False,
            False,
            False,
            Phase.DRIFTED,
            Purpose.APPLY,
        ),
        # Observe and paused never write
        (OBSERVE, reading(1, "host"), None, False, True, False, Phase.DRIFTED, None),
        (ENFORCE, reading(1, "host"), None, True, True, False, Phase.DRIFTED, None),
        # an older policy owning the VM with another track wins
        (ENFORCE, reading(1, "host"), None, False, True, True, Phase.CONFLICT, None),
        # VM unknown to ZStack, or unreadable
        (ENFORCE, VmReading(), None, False, True, False, Phase.NOT_FOUND, None),
        (ENFORCE, failed_reading("SYS.1003"), None, False, True, False, Phase.NOT_FOUND, None),
        (ENFORCE, failed_reading("SYS.1001"), None, False, True, False, Phase.PENDING, None),
        (ENFORCE, failed_reading("ID.1002"), None, False, True, False, Phase.FAILED, None),
    ],
)
def test_phase_and_write(  # noqa: PLR0917 - one parameter per table column
    spec: PolicySpec,
    vm: VmReading,
    before: PreviousVm | None,
    paused: bool,
    same_gen: bool,
    owned: bool,
    phase: Phase,
    purpose: Purpose | None,
) -> None:
    plan = plan_policy(
        spec,
        {uuid(1): vm},
        {uuid(1): before} if before else {},
        paused=paused,
        same_generation=same_gen,
        owners={uuid(1): OWNER} if owned else {},
        restore_to=dropped_targets(spec, {uuid(1): before} if before else {}),
        handed_over=set(),
    )
    (only,) = plan.vms
    assert only.phase is phase
    assert (only.write.purpose if only.write else None) is purpose
    assert [w.track for w in plan.writes] == (["guest"] if purpose else [])
    assert only.owner is (OWNER if owned else None)


@pytest.mark.parametrize(
    ("vm", "paused", "handed_over", "step"),
    [
        (reading(2, "guest"), False, False, RestoreStep.WRITE),
        (reading(2, "host"), False, False, RestoreStep.DONE),  # already back
        (VmReading(), False, False, RestoreStep.DONE),  # VM gone
        (failed_reading("SYS.1003"), False, False, RestoreStep.DONE),
        (failed_reading("SYS.1001"), False, False, RestoreStep.UNREADABLE),
        (reading(2, "guest"), True, False, RestoreStep.DEFERRED),
        (reading(2, "guest"), False, True, RestoreStep.DONE),  # another policy still selects it
    ],
)
def test_vms_dropped_from_a_restore_policy(
    vm: VmReading, paused: bool, handed_over: bool, step: RestoreStep
) -> None:
    before = {uuid(2): previous(2, phase="Applied", observed_track="guest", previous_track="host")}
    plan = plan_policy(
        RESTORE,
        {uuid(1): reading(1, "guest"), uuid(2): vm},
        before,
        paused=paused,
        same_generation=True,
        owners={},
        restore_to=dropped_targets(RESTORE, before),
        handed_over={uuid(2)} if handed_over else set(),
    )
    (restore,) = plan.restores
    assert restore.step is step
    assert [(w.uuid, w.track, w.purpose) for w in plan.writes] == (
        [(uuid(2), "host", Purpose.RESTORE)] if step is RestoreStep.WRITE else []
    )


def test_orphan_policies_forget_dropped_vms() -> None:
    before = {uuid(2): previous(2, phase="Applied", observed_track="guest", previous_track="host")}
    assert dropped_targets(RESTORE, before) == {uuid(2): "host"}
    assert dropped_targets(ENFORCE, before) == {}
    plan = plan_policy(
        ENFORCE,
        {uuid(1): reading(1)},
        before,
        paused=False,
        same_generation=True,
        owners={},
        restore_to=dropped_targets(ENFORCE, before),
        handed_over=set(),
    )
    assert plan.restores == ()
