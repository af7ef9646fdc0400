"""Red team of the restructured core loop (issue 14, design.md §5.9-5.13): each test drives the real
PolicyController, ConnectionManager, client and engine (ZStack: the simulator over loopback; Kubernetes: the
in-memory FakeKube of test_controller.py) into a moment where one of §5's promises does not hold."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vmclock.engine.spec import POLICY_PLURAL
from vmclock.kubeapi import Rejected, Written

from . import test_controller
from .test_controller import FakeKube, Parts, running_parts
from .test_core_loop import one_request_slot

sim = test_controller.sim
parts = test_controller.parts
no_event_posting = test_controller.no_event_posting


async def test_an_orphan_policy_deleted_mid_apply_sends_no_more_of_its_writes(parts: Parts) -> None:
    """§5 "no forward write after a deletion was requested": an Orphan policy has no finalizer, so its
    deletion reaches the controller as kopf's DELETED event (registry.py: `enqueue(ref)`). The apply already
    running must stop submitting then, as it does for a Restore policy's deletion."""
    sim = parts.sim
    sim.faults.latency = 0.05
    one_request_slot(parts)
    vms = parts.host_vms(40)
    ref = parts.policy("p", vms)  # deletionPolicy defaults to Orphan
    parts.controller.enqueue(ref)
    await parts.settle(lambda: len(sim.stats.writes) >= 2)
    del parts.kube.objects[(POLICY_PLURAL, *ref)]  # kubectl delete: no finalizer, the object is gone
    parts.index.sync(parts.kube)
    parts.controller.enqueue(ref)  # the DELETED event handler
    at_delete = len(sim.stats.writes)
    await parts.settle(lambda: not parts.controller.queue.is_processing(ref), within=30)
    late = [w for w in sim.stats.writes[at_delete:] if w.track == "guest"]
    assert len(late) <= 1, f"{len(late)} writes of the deleted policy's track went out after its deletion"


class RejectsTheVerdict(FakeKube):
    """The API server refuses the final status of a reconcile (a 422 for a field only the final status
    carries) and accepts the rest: the Reconciling mark, the intent and progress, the StatusRejected one."""

    async def write_status(
        self,
        plural: str,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        *,
        uid: str,
        resource_version: str,
    ) -> Written:
        synced = {c.get("reason") for c in status.get("conditions") or () if c.get("type") == "Synced"}
        if plural == POLICY_PLURAL and not synced & {"Reconciling", "StatusRejected"}:
            raise Rejected(422, "Invalid", f"{plural} {namespace}/{name} status")
        return await super().write_status(
            plural, namespace, name, status, uid=uid, resource_version=resource_version
        )


async def test_a_rejected_final_status_does_not_put_back_the_picture_from_before_the_reconcile(
    sim: Any,
) -> None:
    """§5.7 "no stale writes" (and §5.4: status shows each VM's previousTrack before its write leaves): when
    the final status is refused, the StatusRejected condition must land on the status as it is now, not on
    the status the reconcile read before it wrote anything."""
    kube = RejectsTheVerdict()
    async with running_parts(sim, kube) as parts:
        vms = parts.host_vms(2)
        ref = parts.policy("p", vms)
        parts.controller.enqueue(ref)
        await parts.settle(lambda: "StatusRejected" in repr(parts.status(ref).get("conditions")))
        assert all(sim.state.track_of(u) == "guest" for u in vms), "the writes went out"
        intent = [s for name, s in kube.patches if name == "p" and s.get("vms")]
        assert intent, "the intent status listed the VMs with their previous track"
        listed = {e["uuid"]: e.get("previousTrack") for e in parts.status(ref).get("vms") or ()}
        assert listed == dict.fromkeys(vms, "host"), (
            f"status now lists {listed}: the pre-reconcile picture was written over the intent status"
        )
