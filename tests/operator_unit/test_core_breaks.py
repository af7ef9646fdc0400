"""Red team of the restructured core loop (issue 14, design.md §5.9-5.13): each test drives the real
PolicyController, ConnectionManager, client and engine (ZStack: the simulator over loopback; Kubernetes: the
in-memory FakeKube of test_controller.py) into a moment where one of §5's promises does not hold."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from vmclock.connections import ConnectionManager
from vmclock.connections.trust import EndpointPolicy
from vmclock.engine.external import apply_writes
from vmclock.engine.report import listed_first
from vmclock.engine.spec import CONNECTION_PLURAL, POLICY_PLURAL
from vmclock.kopfapp.controller import PolicyController
from vmclock.kopfapp.metrics import Metrics
from vmclock.kopfapp.records import record_name
from vmclock.kubeapi import Rejected, Written
from vmclock.refs import Ref
from vmclock.simulator import Simulator, SimulatorConfig

from . import test_controller
from .test_controller import (
    CONNECTION,
    DELETED_AT,
    NS,
    SECRET_VALUE,
    FakeIndex,
    FakeKube,
    Parts,
    ready,
    running_parts,
    secret,
)
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
    parts.controller.deleted(ref, "uid-p")  # the DELETED event handler
    # Submissions, not job completions: a job accepted before the deletion may finish after it (more so on a
    # loaded machine), while the one request holding the slot is all that may still leave.
    at_delete = sim.stats.calls["SetVmClockTrack"]
    await parts.settle(lambda: not parts.controller.queue.is_processing(ref), within=30)
    late = sim.stats.calls["SetVmClockTrack"] - at_delete
    assert late <= 1, f"{late} of the deleted policy's writes were submitted after its deletion"


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
    sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """§5.7 "no stale writes" (and §5.4: a long apply shows each VM's previousTrack in status while it
    writes): when the final status is refused, the StatusRejected condition must land on the status as it
    is now, not on the status the reconcile read before it wrote anything."""
    assert apply_writes.__kwdefaults__ is not None
    monkeypatch.setitem(apply_writes.__kwdefaults__, "progress_every", 0.05)
    sim.faults.latency = 0.2  # long enough for a progress write before the verdict
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


def _tenant(kube: FakeKube, namespace: str, simulator: Simulator) -> None:
    """A namespace with its Secret and its `default` ZStackConnection to `simulator`."""
    kube.secrets[(namespace, "creds")] = secret("1", simulator)
    kube.objects[(CONNECTION_PLURAL, namespace, "default")] = {
        "metadata": {"namespace": namespace, "name": "default", "generation": 1, "uid": f"c-{namespace}"},
        "spec": {"endpoint": simulator.endpoint, "credentialsSecretRef": {"name": "creds"}},
    }


def _policy(kube: FakeKube, namespace: str, name: str, vms: list[str]) -> Ref:
    kube.objects[(POLICY_PLURAL, namespace, name)] = {
        "metadata": {
            "namespace": namespace,
            "name": name,
            "uid": f"uid-{namespace}-{name}",
            "generation": 1,
            "creationTimestamp": "2026-05-01T12:00:00Z",
        },
        "spec": {"track": "guest", "vmUuids": vms},
    }
    return Ref(namespace, name)


async def test_a_management_node_slow_to_answer_its_login_holds_no_worker_past_the_deadline(
    sim: Simulator,
) -> None:
    """§5.10-5.11: a reconcile's deadline bounds everything in it, so a tenant's management node that answers
    every request slowly (3 s; the client waits up to 30 s) holds a worker for about one reconcile (1 s
    here) and another tenant's policy gets one within about that. Getting the lease (the connection's
    check: ready, version, login) is not under the deadline: the slow tenant's eight policies hold all
    eight workers for the whole check."""
    slow_config = SimulatorConfig(vms=40, accounts={"admin": SECRET_VALUE}, job_latency=0.02)
    async with Simulator(slow_config) as slow:
        slow.faults.latency = 3.0
        kube = FakeKube()
        _tenant(kube, NS, sim)
        _tenant(kube, "slow", slow)
        manager = ConnectionManager(kube, endpoints=EndpointPolicy(allow_insecure=True))
        controller = PolicyController(
            kube, manager, Metrics(CollectorRegistry()), workers=8, per_connection=8, reconcile_seconds=1.0
        )
        index = FakeIndex()
        index.serve(controller, kube)
        try:
            slow_vms = slow.state.vm_uuids()
            for i in range(8):
                ref = _policy(kube, "slow", f"s{i}", slow_vms[i * 2 : i * 2 + 2])
                controller.enqueue(ref, uid=f"uid-slow-s{i}", generation=1, connection="default")
            index.sync(kube)
            slow_refs = [Ref("slow", f"s{i}") for i in range(8)]
            async with asyncio.timeout(5.0):  # the workers take them at once
                while not all(controller.queue.is_processing(r) for r in slow_refs):  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            fast = _policy(
                kube, NS, "f", [u for u in sim.state.vm_uuids() if sim.state.track_of(u) == "host"][:2]
            )
            index.sync(kube)
            started = time.monotonic()
            controller.enqueue(fast, uid=f"uid-{NS}-f", generation=1, connection="default")

            def fast_status() -> dict[str, Any]:
                found: dict[str, Any] = kube.objects[(POLICY_PLURAL, *fast)].get("status", {})
                return found

            while time.monotonic() - started < 20 and not ready(fast_status()):  # noqa: ASYNC110 - polls a fake
                await asyncio.sleep(0.05)
            waited = time.monotonic() - started
        finally:
            await controller.stop()
            await manager.close_all()
        assert ready(fast_status()), "the other tenant's policy never got a worker"
        assert waited < 5, (
            f"Ready after {waited:.1f}s: the slow tenant held every worker past its 1 s deadline"
        )


async def test_a_drift_write_after_the_record_configmap_was_deleted_records_its_intent_again(
    parts: Parts, monkeypatch: pytest.MonkeyPatch
) -> None:
    """§5.4 and §5.6 with the record ConfigMap deleted by someone else (a cleanup script, `kubectl delete cm
    -l app.kubernetes.io/managed-by=vmclock`): the controller still holds the record in its runtime, so the
    next write it sends must be covered by a record in the ConfigMap again. It is not: the cached copy says
    the VM is recorded, no store happens, the write leaves. After a restart the record is gone and the
    deletion of the Restore selector policy lets go with VMs status never listed still on its track."""
    sim = parts.sim
    assert listed_first.__defaults__ is not None
    monkeypatch.setattr(listed_first, "__defaults__", (2,))  # status lists 2 VMs (stands for 500 of 10,000)
    host = set(parts.host_vms(40))
    ref = parts.policy("p", [], selector={"namePattern": "*"}, deletionPolicy="Restore")
    del parts.kube.objects[(POLICY_PLURAL, *ref)]["spec"]["vmUuids"]
    parts.controller.enqueue(ref, uid="uid-p", generation=1)
    await parts.settle(lambda: ready(parts.status(ref)))
    changed = {u for u in host if sim.state.track_of(u) == "guest"}
    assert len(changed) > 2 == len(parts.status(ref)["vms"]), "status lists only some of the changed VMs"
    del parts.kube.config_maps[(NS, record_name("p"))]  # someone deleted the record
    drifted = sorted(changed)[0]
    sim.state.set_track_behind(drifted, "host")
    parts.controller.enqueue(ref)  # the drift check
    await parts.settle(lambda: sim.state.track_of(drifted) == "guest")
    await parts.settle(lambda: not parts.controller.queue.is_processing(ref))
    await parts.controller.stop()  # the operator restarts
    manager = ConnectionManager(parts.kube, endpoints=EndpointPolicy(allow_insecure=True))
    controller = PolicyController(parts.kube, manager, parts.metrics, workers=2)
    parts.index.serve(controller, parts.kube)
    try:
        parts.kube.objects[(POLICY_PLURAL, *ref)]["metadata"]["deletionTimestamp"] = DELETED_AT
        released = await controller.wait_restored(ref, "uid-p", 20.0)
    finally:
        await controller.stop()
        await manager.close_all()
    left = sorted(u for u in changed if sim.state.track_of(u) != "host")
    assert not (released and left), f"the deletion let go with {len(left)} of {len(changed)} VMs not restored"


class HeldRead:
    """Another policy's shared batch that read the VMs and then waits for `release` before it answers
    (the ZStack side: a slow reply); it reads through the connection's real client."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.destination = client.destination
        self.release = asyncio.Event()
        self.read = asyncio.Event()

    async def get_vm_inventories(self, uuids: Any) -> Any:
        return await self._client.get_vm_inventories(uuids)

    async def get_clock_tracks(self, uuids: Any, *, existing: Any = None) -> Any:
        tracks = await self._client.get_clock_tracks(uuids, existing=existing)
        self.read.set()
        await self.release.wait()
        return tracks


async def test_a_reading_taken_before_the_last_forward_write_landed_never_ends_a_restore() -> None:
    """§5.6 with §5.5: the policy is deleted while its write of X is in ZStack (the job runs 1 s). Another
    policy's shared batch reads X meanwhile (still host: the job has not finished) and answers only after
    the forward reconcile ended and invalidated X. That reading is newer than the deletion's request, so
    the restore takes it: X "is already host", nothing is written, the record is deleted and the deletion
    lets go, while X is on the deleted policy's track (guest)."""
    config = SimulatorConfig(vms=8, accounts={"admin": SECRET_VALUE}, job_latency=1.0)
    async with Simulator(config) as slow_jobs, running_parts(slow_jobs, FakeKube()) as parts:
        x = parts.host_vms(1)[0]
        ref = parts.policy("p", [x], deletionPolicy="Restore")
        parts.controller.enqueue(ref)
        await parts.settle(lambda: slow_jobs.stats.calls["SetVmClockTrack"] >= 1)  # X's job is running
        deleting = asyncio.create_task(parts.deleted(ref, 20.0))
        await parts.settle(lambda: ref in parts.controller.queue)  # the deletion asked for its restore
        raw = parts.kube.objects[(CONNECTION_PLURAL, *CONNECTION)]["spec"]
        async with parts.manager.lease(NS, "default", raw) as client:
            held = HeldRead(client)
            observer = parts.controller._observer(CONNECTION)
            batch = asyncio.create_task(observer.read(held, [x], since=time.monotonic()))  # type: ignore[arg-type]
            await asyncio.wait_for(held.read.wait(), 5.0)
            assert slow_jobs.state.track_of(x) == "host", "the batch read X while its job was running"
            real_read = parts.kube.read_object

            async def read(plural: str, namespace: str, name: str) -> dict[str, Any] | None:
                if plural == CONNECTION_PLURAL and not held.release.is_set():
                    held.release.set()  # the restore starts (the forward reconcile ended): the batch answers
                    await batch
                return await real_read(plural, namespace, name)

            parts.kube.read_object = read  # type: ignore[method-assign]
            released = await deleting
        assert slow_jobs.state.track_of(x) == "host" or not released, (
            "the deletion let go while X is still on the deleted policy's track"
        )


async def test_a_restore_whose_read_outlasts_one_slice_still_finishes(parts: Parts) -> None:
    """§5.6 with §5.10: reading the VMs to restore takes a little longer than one reconcile slice (two
    requests of 0.25 s against a 0.3 s bound). The shared batch is shielded and outlives the slice so the
    next slice can use it, but the slice's own requeue (`queue.add`) moves the request time past the
    batch's, so every slice discards the batch the previous one paid for, reads again and is cut again:
    the restore never writes anything, while ZStack answers every request."""
    sim = parts.sim
    vms = parts.host_vms(4)
    ref = parts.policy("p", vms, deletionPolicy="Restore")
    parts.controller.enqueue(ref)
    await parts.settle(lambda: set(test_controller.phases(parts.status(ref)).values()) == {"Applied"})
    sim.faults.latency = 0.25
    parts.controller._reconcile_seconds = 0.3
    restored = await parts.deleted(ref, 15.0)
    assert restored, f"not restored after 15 s of 0.3 s slices: {parts.controller.restore_problem(ref)}"
    assert all(sim.state.track_of(u) == "host" for u in vms)


async def test_a_spec_edit_mid_restore_is_no_restore_failure(parts: Parts) -> None:
    """§5.6 with §5.3: a spec edit while the restore writes (a GitOps sync bumps the generation) stops the
    restore's unsent writes, as a newer generation should. That is no failure: like a slice that ran out of
    time, the restore carries on at once, without RestorePending (a Warning Event people are paged on) and
    without a backoff step."""
    sim = parts.sim
    one_request_slot(parts)
    vms = parts.host_vms(40)
    ref = parts.policy("p", vms, deletionPolicy="Restore")
    parts.controller.enqueue(ref)
    await parts.settle(
        lambda: set(test_controller.phases(parts.status(ref)).values()) == {"Applied"}, within=30
    )
    sim.faults.latency = 0.05
    seen: list[str] = []
    parts.kube.on_patch = lambda name, patch: seen.extend(
        c["reason"] for c in patch.get("conditions") or () if c["type"] == "Synced"
    )
    body = parts.kube.objects[(POLICY_PLURAL, *ref)]
    body["metadata"]["generation"] = 2  # the API server bumps it with deletionTimestamp
    at_delete = len(sim.stats.writes)
    deleting = asyncio.create_task(parts.deleted(ref, 30.0))
    await parts.settle(lambda: len(sim.stats.writes) >= at_delete + 2)
    body["spec"]["resyncIntervalSeconds"] = 600
    body["metadata"]["generation"] = 3
    parts.controller.enqueue(ref, uid=parts.uid(ref), generation=3)  # kopf's spec-change handler
    assert await deleting, "restored within one wait of the deletion handler"
    assert all(sim.state.track_of(u) == "host" for u in vms)
    assert "RestorePending" not in seen, "a restore stopped by a newer generation was reported as a failure"
    assert parts.controller.queue.failures(ref) == 0, "and counted as one for the backoff"


async def test_a_write_still_running_in_zstack_at_the_deadline_is_restored_too() -> None:
    """§5.6 with §5.10: the forward apply's deadline cuts the wait for X's job (it runs on in ZStack, 2 s)
    and the policy is being deleted. The restore right after reads X while the job still runs (host), finds
    nothing to do, deletes the record and lets the deletion go; then the job ends and X is on the deleted
    policy's track for good."""
    config = SimulatorConfig(vms=8, accounts={"admin": SECRET_VALUE}, job_latency=2.0)
    async with Simulator(config) as slow_jobs, running_parts(slow_jobs, FakeKube()) as parts:
        parts.controller._reconcile_seconds = 0.5
        x = parts.host_vms(1)[0]
        ref = parts.policy("p", [x], deletionPolicy="Restore")
        parts.controller.enqueue(ref)
        await parts.settle(lambda: slow_jobs.stats.calls["SetVmClockTrack"] >= 1)  # X's job is running
        released = await parts.deleted(ref, 10.0)
        await parts.settle(lambda: any(w.uuid == x and w.track == "guest" for w in slow_jobs.stats.writes))
        assert not released or slow_jobs.state.track_of(x) == "host", (
            "the deletion let go before X's forward job ended; X stays on the deleted policy's track"
        )
