"""The core loop's second pass (design.md §5.9-5.13): one test per defect a review reproduced on f0e48f6.

Same parts as test_controller.py: the real PolicyController, ConnectionManager, client, queue and engine;
ZStack is the simulator over loopback; the Kubernetes API is the in-memory stand-in, which answers the way
KubeApi does (typed Gone/Stale/Rejected, uid and resourceVersion preconditions).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import kopf
import pytest
from prometheus_client import CollectorRegistry

from vmclock.connections import ConnectionManager
from vmclock.connections.leased import FRESH_SECONDS
from vmclock.connections.trust import EndpointPolicy
from vmclock.engine.external import SharedObserver, apply_writes
from vmclock.engine.spec import CONNECTION_PLURAL, POLICY_PLURAL
from vmclock.kopfapp.connections import ConnectionWorker
from vmclock.kopfapp.controller import PolicyController
from vmclock.kopfapp.liveness import Heartbeats
from vmclock.kopfapp.metrics import Metrics
from vmclock.kopfapp.records import PREFIX, RESTARTS_PREFIX, record_name
from vmclock.kubeapi import Forbidden, Rejected, Written
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
    phases,
    ready,
    running_parts,
    secret,
)

sim = test_controller.sim
parts = test_controller.parts
no_event_posting = test_controller.no_event_posting


def one_request_slot(parts: Parts) -> None:
    """The connection sends one request at a time: submissions leave one by one, so a test can act
    between them."""
    parts.kube.objects[(CONNECTION_PLURAL, *CONNECTION)]["spec"]["maxConcurrentRequests"] = 1


async def until_restored(parts: Parts, ref: Ref, uid: str) -> int:
    """kopf's deletion handler: wait_restored(30 s), else TemporaryError(delay=1) and again; its runs."""
    calls = 0
    while True:
        calls += 1
        if await parts.controller.wait_restored(ref, uid, 30.0):
            return calls
        await asyncio.sleep(1.0)


async def test_a_recreate_seen_while_the_worker_finds_the_policy_gone_is_not_lost(parts: Parts) -> None:
    """Defect 4: the worker reads 404, and before it goes on, the create handler of a namesake runs."""
    vms = parts.host_vms(2)
    ref = parts.policy("p", vms)
    parts.controller.enqueue(ref)
    await parts.settle(lambda: parts.due(ref))
    real_read = parts.kube.read_object
    fired = False

    async def read(plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        nonlocal fired
        found = await real_read(plural, namespace, name)
        if plural == POLICY_PLURAL and found is None and not fired:
            fired = True
            parts.policy("p", vms[:1], uid="uid-new")
            parts.controller.enqueue(ref, uid="uid-new", generation=1)  # its create handler
        return found

    parts.kube.read_object = read  # type: ignore[method-assign]
    del parts.kube.objects[(POLICY_PLURAL, *ref)]
    parts.index.sync(parts.kube)
    parts.controller.enqueue(ref)  # the DELETED handler
    await parts.settle(lambda: fired)
    await parts.settle(lambda: parts.status(ref).get("observedGeneration") == 1 and ready(parts.status(ref)))
    assert phases(parts.status(ref)) == {vms[0]: "InSync"}, "the re-created policy was reconciled"


async def test_deleting_a_recreated_restore_policy_restores_its_vms(parts: Parts, sim: Simulator) -> None:
    """Defect 2: the restore-done signal of a deleted policy must not release its namesake's deletion."""
    vms = parts.host_vms(3)
    ref = parts.policy("p", vms, deletionPolicy="Restore")
    parts.controller.enqueue(ref)
    await parts.settle(lambda: set(phases(parts.status(ref)).values()) == {"Applied"})
    assert await parts.deleted(ref, 10.0)
    assert all(sim.state.track_of(u) == "host" for u in vms)
    # kopf removed the finalizer; Argo CD self-heal re-creates the policy before a worker handled DELETED
    del parts.kube.objects[(POLICY_PLURAL, *ref)]
    parts.policy("p", vms, uid="uid-2", deletionPolicy="Restore")
    parts.controller.enqueue(ref)  # DELETED handler of uid-p
    parts.controller.enqueue(ref, uid="uid-2", generation=1)  # create handler of uid-2
    await parts.settle(lambda: set(phases(parts.status(ref)).values()) == {"Applied"})
    assert all(sim.state.track_of(u) == "guest" for u in vms)
    assert await parts.deleted(ref, 10.0)
    assert all(sim.state.track_of(u) == "host" for u in vms), "uid-2's own VMs were restored first"


class RejectingStatus(FakeKube):
    """The API server refuses every status (422 Invalid with causes: schema, CEL or admission)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def read_object(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        if plural == POLICY_PLURAL:
            self.reads += 1
        await asyncio.sleep(0.002)  # an API server round trip
        return await super().read_object(plural, namespace, name)

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
        raise Rejected(422, "Invalid", f"{plural} {namespace}/{name} status")


async def test_a_rejected_status_write_backs_off_with_a_warning(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect 6 (design.md §5.13): a refused status is a bug or an attack: Warning Event, backoff, no spin."""
    posted: list[tuple[str, str]] = []
    monkeypatch.setattr(
        "vmclock.kopfapp.controller.post_events",
        lambda body, events: posted.extend((e.type, e.reason) for e in events),
    )
    kube = RejectingStatus()
    async with running_parts(sim, kube) as parts:
        ref = parts.policy("p", parts.host_vms(2))
        parts.controller.enqueue(ref)
        await asyncio.sleep(2.0)
        assert kube.reads < 10, f"{kube.reads} policy reads in 2 s: a refused status is retried in a loop"
        assert parts.controller.queue.failures(ref) >= 1, "it backs off"
        assert ("Warning", "StatusRejected") in posted


async def test_a_listed_uuid_that_breaks_the_status_schema_is_refused_before_status(
    parts: Parts, sim: Simulator
) -> None:
    """Defect 6's trigger: a selector listing with a uuid the CRD's pattern rejects is garbage, not a VM."""
    bad = sim.state.vm_uuids()[0]
    hostile = sim.state.vm(bad)
    hostile.uuid, hostile._rendered = "Not-A-Uuid", None  # what a hostile endpoint would list
    ref = parts.policy("p", [], selector={"namePattern": "*"})
    del parts.kube.objects[(POLICY_PLURAL, *ref)]["spec"]["vmUuids"]
    parts.controller.enqueue(ref)
    await parts.settle(lambda: bool(parts.status(ref).get("conditions")))
    await parts.settle(lambda: parts.status(ref)["conditions"][0]["reason"] != "Reconciling")
    condition = next(c for c in parts.status(ref)["conditions"] if c["type"] == "Ready")
    assert condition["reason"] == "SelectionFailed"
    assert "uuid" in condition["message"]
    assert not sim.stats.writes


async def test_a_slow_connection_does_not_starve_other_tenants(sim: Simulator) -> None:
    """Defect 7 (design.md §5.11): eight policies on a connection whose jobs take 20 s, eight workers, each
    allowed to go to that one connection when it is alone. Another tenant's policy still gets a worker
    within about one reconcile (its deadline here: 1 s) and is Ready about as fast as alone."""
    slow_config = SimulatorConfig(vms=40, accounts={"admin": SECRET_VALUE}, job_latency=20.0)
    async with Simulator(slow_config) as slow:
        kube = FakeKube()
        kube.secrets[(NS, "creds")] = secret("1", sim)
        kube.secrets[("slow", "creds")] = secret("1", slow)
        for namespace, endpoint in ((NS, sim.endpoint), ("slow", slow.endpoint)):
            kube.objects[(CONNECTION_PLURAL, namespace, "default")] = {
                "metadata": {
                    "namespace": namespace,
                    "name": "default",
                    "generation": 1,
                    "uid": f"c-{namespace}",
                },
                "spec": {"endpoint": endpoint, "credentialsSecretRef": {"name": "creds"}},
            }
        manager = ConnectionManager(kube, endpoints=EndpointPolicy(allow_insecure=True))
        controller = PolicyController(
            kube, manager, Metrics(CollectorRegistry()), workers=8, per_connection=8, reconcile_seconds=1.0
        )
        index = FakeIndex()
        index.serve(controller, kube)
        slow_vms = [u for u in slow.state.vm_uuids() if slow.state.track_of(u) == "host"]
        for i in range(8):
            kube.objects[(POLICY_PLURAL, "slow", f"s{i}")] = {
                "metadata": {
                    "namespace": "slow",
                    "name": f"s{i}",
                    "uid": f"uid-s{i}",
                    "generation": 1,
                    "creationTimestamp": "2026-05-01T12:00:00Z",
                },
                "spec": {"track": "guest", "vmUuids": slow_vms[i * 2 : i * 2 + 2]},
            }
            controller.enqueue(Ref("slow", f"s{i}"), uid=f"uid-s{i}", generation=1, connection="default")
        index.sync(kube)
        await asyncio.sleep(0.5)
        busy = sum(controller.queue.is_processing(Ref("slow", f"s{i}")) for i in range(8))
        assert busy == 8, "alone, the slow connection had every worker"
        fast_vms = [u for u in sim.state.vm_uuids() if sim.state.track_of(u) == "host"][:2]
        kube.objects[(POLICY_PLURAL, NS, "f")] = {
            "metadata": {
                "namespace": NS,
                "name": "f",
                "uid": "uid-f",
                "generation": 1,
                "creationTimestamp": "2026-05-01T12:00:00Z",
            },
            "spec": {"track": "guest", "vmUuids": fast_vms},
        }
        index.sync(kube)
        started = time.monotonic()
        controller.enqueue(Ref(NS, "f"), uid="uid-f", generation=1, connection="default")

        def status() -> dict[str, Any]:
            found: dict[str, Any] = kube.objects[(POLICY_PLURAL, NS, "f")].get("status", {})
            return found

        while time.monotonic() - started < 10 and not ready(status()):  # noqa: ASYNC110 - polls a fake
            await asyncio.sleep(0.05)
        waited = time.monotonic() - started
        await controller.stop()
        await manager.close_all()
        assert ready(status()), "another tenant's slow ZStack held every worker"
        assert waited < 5, f"Ready after {waited:.1f}s: more than about one reconcile of the slow tenant"


async def test_a_restore_after_a_restart_uses_the_connection_that_waits_for_it(
    parts: Parts, sim: Simulator
) -> None:
    """Defect 1: the policy and its connection are both deleting and the operator restarted: the deleting
    connection is still a connection for restores, so neither waits for the other forever."""
    vms = parts.host_vms(3)
    ref = parts.policy("p", vms, deletionPolicy="Restore")
    parts.controller.enqueue(ref)
    await parts.settle(lambda: set(phases(parts.status(ref)).values()) == {"Applied"})
    await parts.controller.stop()
    parts.kube.objects[(CONNECTION_PLURAL, *CONNECTION)]["metadata"]["deletionTimestamp"] = DELETED_AT
    parts.kube.objects[(POLICY_PLURAL, *ref)]["metadata"]["deletionTimestamp"] = DELETED_AT
    manager = ConnectionManager(parts.kube, endpoints=EndpointPolicy(allow_insecure=True))
    controller = PolicyController(parts.kube, manager, parts.metrics, workers=2)
    parts.index.serve(controller, parts.kube)
    worker = ConnectionWorker(parts.kube, manager, controller, parts.metrics, heartbeats=Heartbeats())
    try:
        assert await controller.wait_restored(ref, parts.uid(ref), 10.0), "each waited for the other"
        assert all(sim.state.track_of(u) == "host" for u in vms)
        del parts.kube.objects[(POLICY_PLURAL, *ref)]  # kopf removed the finalizer
        parts.index.sync(parts.kube)
        body = kopf.Body(parts.kube.objects[(CONNECTION_PLURAL, *CONNECTION)])  # type: ignore[arg-type]
        await worker.release(body)  # and then the connection goes
    finally:
        await controller.stop()
        await manager.close_all()


async def test_deleting_a_restore_policy_mid_apply_stops_the_forward_writes_and_restores_at_once(
    parts: Parts, sim: Simulator
) -> None:
    """Defect 5: the deletion stops the apply's unsent writes and its restore starts right after."""
    sim.faults.latency = 0.05
    one_request_slot(parts)
    vms = parts.host_vms(40)
    ref = parts.policy("p", vms, deletionPolicy="Restore")
    parts.controller.enqueue(ref)
    await parts.settle(lambda: len(sim.stats.writes) >= 2)
    body = parts.kube.objects[(POLICY_PLURAL, *ref)]
    body["metadata"]["deletionTimestamp"] = DELETED_AT
    body["metadata"]["generation"] = 2  # the API server bumps generation when it sets deletionTimestamp
    at_delete = len(sim.stats.writes)
    started = time.monotonic()
    await until_restored(parts, ref, parts.uid(ref))
    took = time.monotonic() - started
    forward = [w for w in sim.stats.writes[at_delete:] if w.track == "guest"]
    assert len(forward) <= 1, f"{len(forward)} writes of the deleted policy's track after its deletion"
    assert all(sim.state.track_of(u) == "host" for u in vms)
    assert took < 10, f"the restore finished {took:.1f}s after the deletion"


async def test_a_restore_cut_by_the_time_bound_carries_on_without_backoff(
    parts: Parts, sim: Simulator
) -> None:
    """Defect 9: a slice that only ran out of time is not a failure: no RestorePending, no backoff."""
    one_request_slot(parts)
    vms = parts.host_vms(40)
    ref = parts.policy("p", vms, deletionPolicy="Restore")
    parts.controller.enqueue(ref)
    await parts.settle(lambda: set(phases(parts.status(ref)).values()) == {"Applied"}, within=30)
    sim.faults.latency = 0.05
    parts.controller._reconcile_seconds = 0.3  # stands for the 120 s bound on a 10,000-VM selector restore
    seen: list[str] = []
    parts.kube.on_patch = lambda name, patch: seen.extend(
        c["reason"] for c in patch.get("conditions") or () if c["type"] == "Synced"
    )
    parts.kube.objects[(POLICY_PLURAL, *ref)]["metadata"]["deletionTimestamp"] = DELETED_AT
    calls = await until_restored(parts, ref, parts.uid(ref))
    assert "RestorePending" not in seen, "a slice that ran out of time was reported as a failure"
    assert calls == 1, "and it went on at once, not after a backoff"
    assert all(sim.state.track_of(u) == "host" for u in vms)


async def test_the_secret_is_looked_at_while_a_long_apply_uses_it(parts: Parts, sim: Simulator) -> None:
    """Defect 10: a long apply notices a rotated Secret within seconds, as README says."""
    sim.faults.latency = 0.2
    one_request_slot(parts)
    vms = parts.host_vms(40)
    ref = parts.policy("p", vms)
    reads: list[float] = []
    real = parts.kube.read_secret

    async def counting(namespace: str, name: str) -> Any:
        reads.append(time.monotonic())
        return await real(namespace, name)

    parts.kube.read_secret = counting  # type: ignore[method-assign]
    parts.controller.enqueue(ref)
    await parts.settle(lambda: len(sim.stats.writes) >= 1)
    first_write = time.monotonic()
    await parts.settle(lambda: not parts.controller.queue.is_processing(ref), within=60)
    took = time.monotonic() - first_write
    during = [t for t in reads if first_write <= t <= first_write + took]
    assert took > 6, "the apply is long enough to need a look"
    assert len(during) >= int(took // 5), f"{len(during)} Secret reads in a {took:.1f}s apply"


async def test_a_revoked_secret_stops_a_long_apply(parts: Parts, sim: Simulator) -> None:
    """Defect 10's harm: credentials taken away mid-apply are not used for long: no submit leaves more
    than one look (FRESH_SECONDS) after the Secret is gone, and the writes not sent stay Pending."""
    sim.faults.latency = 0.1
    one_request_slot(parts)
    vms = parts.host_vms(40)
    ref = parts.policy("p", vms)
    parts.controller.enqueue(ref)
    await parts.settle(lambda: len(sim.stats.writes) >= 2)
    del parts.kube.secrets[(NS, "creds")]
    revoked = time.time()
    await parts.settle(lambda: not parts.controller.queue.is_processing(ref), within=30)
    late = [w for w in sim.stats.writes if w.at > revoked + FRESH_SECONDS + 1.0]
    assert not late, f"{len(late)} writes went on with credentials no longer there"
    assert "Pending" in phases(parts.status(ref)).values() or len(sim.stats.writes) == len(vms)


class SlowServerKube(FakeKube):
    """Status writes take the API server a while, and progress writes (Synced=Unknown) much longer; a
    write the caller stopped waiting for is still applied when the server gets to it (shielded), as a
    request already on the wire is."""

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
        progress = any(c.get("reason") == "Reconciling" for c in status.get("conditions") or ())

        async def server() -> Written:
            await asyncio.sleep(0.6 if progress else 0.05)
            return await FakeKube.write_status(
                self, plural, namespace, name, status, uid=uid, resource_version=resource_version
            )

        return await asyncio.shield(asyncio.ensure_future(server()))


async def test_a_cancelled_progress_write_never_lands_after_the_final_status(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect 8: the final status wins over a progress write that was still on its way."""
    assert apply_writes.__kwdefaults__ is not None
    monkeypatch.setitem(apply_writes.__kwdefaults__, "progress_every", 0.25)
    sim.faults.latency = 0.1
    async with running_parts(sim, SlowServerKube()) as parts:
        one_request_slot(parts)
        ref = parts.policy("p", parts.host_vms(12))
        parts.controller.enqueue(ref)
        await parts.settle(lambda: parts.due(ref), within=30)
        await asyncio.sleep(1.5)  # every write the server still had has landed or failed by now
        synced = next(c for c in parts.status(ref)["conditions"] if c["type"] == "Synced")
        assert synced["reason"] != "Reconciling", "an older progress write landed after the final status"
        assert set(phases(parts.status(ref)).values()) == {"Applied"}


@pytest.fixture
async def big() -> AsyncIterator[Simulator]:
    config = SimulatorConfig(vms=1400, accounts={"admin": SECRET_VALUE}, job_latency=0.0)
    async with Simulator(config) as running:
        yield running


async def test_switching_a_restore_selector_policy_to_vm_uuids_restores_every_recorded_vm(
    big: Simulator,
) -> None:
    """Defect 3 (design.md §5.12): one previous-track store for both kinds of policy, whatever status
    lists."""
    async with running_parts(big, FakeKube()) as parts:
        host = {u for u in big.state.vm_uuids() if big.state.track_of(u) == "host"}
        ref = parts.policy("p", [], selector={"namePattern": "*"}, deletionPolicy="Restore")
        body = parts.kube.objects[(POLICY_PLURAL, *ref)]
        del body["spec"]["vmUuids"]
        parts.controller.enqueue(ref, uid="uid-p", generation=1)
        await parts.settle(lambda: ready(parts.status(ref)), within=60)
        changed = {u for u in host if big.state.track_of(u) == "guest"}
        assert len(changed) > 500 >= len(parts.status(ref)["vms"]), "more VMs changed than status lists"
        keep = sorted(changed)[0]
        body["spec"] = {"track": "guest", "vmUuids": [keep], "deletionPolicy": "Restore"}
        body["metadata"]["generation"] = 2
        parts.index.sync(parts.kube)
        parts.controller.enqueue(ref, uid="uid-p", generation=2)
        await parts.settle(lambda: parts.status(ref).get("observedGeneration") == 2, within=60)
        await parts.settle(lambda: ready(parts.status(ref)), within=60)
        back = {u for u in changed if big.state.track_of(u) == "host"}
        assert back == changed - {keep}, "the VMs the policy dropped by switching were put back"
        assert await parts.deleted(ref, 60.0)
        assert {u for u in changed if big.state.track_of(u) == "host"} == changed


async def test_a_shared_read_is_bounded_even_when_no_reconcile_waits_for_it() -> None:
    """design.md §5.10: the batch a reconcile started is shielded from its cancellation, so it has its own
    bound; what it could not read comes back as a timeout for every VM it covered."""

    class Silent:
        destination = "silent"

        async def get_vm_inventories(self, uuids: Any) -> Any:
            await asyncio.sleep(30)

    observer = SharedObserver(window=0.0, bound=0.2)
    started = time.monotonic()
    readings = await observer.read(Silent(), ["a" * 32], since=0.0)  # type: ignore[arg-type]
    assert time.monotonic() - started < 5
    error = readings["a" * 32].error
    assert error is not None
    assert error.code == "CLIENT.TIMEOUT"


async def test_a_replica_paused_by_peering_starts_no_reconcile_until_it_resumes(parts: Parts) -> None:
    """A standby replica (kopf peering) must not write to ZStack: kopf stops its daemons with the reason
    OPERATOR_PAUSING, and the queue then hands out nothing, though requests and wake-ups keep queueing."""
    from kopf._cogs.aiokits.aioenums import FlagSetter  # noqa: PLC0415 - kopf's own stop flag

    worker = ConnectionWorker(
        parts.kube, parts.manager, parts.controller, parts.metrics, heartbeats=Heartbeats()
    )
    setter: FlagSetter[kopf.DaemonStoppingReason] = FlagSetter()
    body = kopf.Body(parts.kube.objects[(CONNECTION_PLURAL, *CONNECTION)])  # type: ignore[arg-type]
    daemon = asyncio.create_task(worker.run(body, setter.async_waiter))
    await asyncio.sleep(0.1)
    setter.set(kopf.DaemonStoppingReason.OPERATOR_PAUSING)
    await daemon
    ref = parts.policy("p", parts.host_vms(2))
    parts.controller.queue.add_after(ref, 0.01)  # a backoff wake-up
    parts.controller.enqueue(ref)  # and a request
    await asyncio.sleep(0.5)
    assert not parts.status(ref), "a paused replica reconciled"
    assert not parts.sim.stats.writes
    resumed = asyncio.create_task(worker.run(body, FlagSetter().async_waiter))  # kopf resumes it
    await parts.settle(lambda: ready(parts.status(ref)))
    resumed.cancel()
    await asyncio.gather(resumed, return_exceptions=True)


@pytest.mark.parametrize("prefix", [PREFIX, RESTARTS_PREFIX])
async def test_a_record_configmap_the_policy_does_not_own_is_never_overwritten(
    parts: Parts, prefix: str
) -> None:
    """issue 15: a `vmclock-tracks-<name>` (or `vmclock-restarts-<name>`) ConfigMap someone else made is not
    this policy's record: the policy says so (RecordConflict) and writes nothing to ZStack, and the ConfigMap
    stays as it was."""
    name = record_name("p", prefix)
    theirs = {"metadata": {"name": name, "namespace": NS}, "data": {"previousTracks": "mine"}}
    await parts.kube.create_config_map(NS, theirs)
    before = dict(parts.kube.config_maps[(NS, name)])
    ref = parts.policy("p", parts.host_vms(2))
    parts.controller.enqueue(ref)
    await parts.settle(lambda: "RecordConflict" in repr(parts.status(ref).get("conditions")))
    assert name in repr(parts.status(ref).get("conditions")), "the message names the ConfigMap"
    assert not parts.sim.stats.writes
    assert parts.kube.config_maps[(NS, name)] == before


async def test_a_namespace_that_withdrew_configmap_access_is_a_condition_not_a_crash(
    parts: Parts, caplog: pytest.LogCaptureFixture
) -> None:
    """A namespace that does not (or no longer) let the operator at its ConfigMaps (never opted in, opted
    out, or being deleted: the namespace controller may remove the RoleBinding before the policies) is the
    namespace's choice: Ready=False NamespaceNotEnabled with the command that enables it, a Warning, backoff,
    nothing written to ZStack, and no traceback logged as an operator failure."""

    async def forbidden(*_: Any, **__: Any) -> Any:
        raise Forbidden(403, "Forbidden", "ConfigMap")

    parts.kube.get_config_map = forbidden  # type: ignore[method-assign]
    ref = parts.policy("p", parts.host_vms(2))
    parts.controller.enqueue(ref)
    await parts.settle(lambda: "NamespaceNotEnabled" in repr(parts.status(ref).get("conditions")))
    ready_condition = next(c for c in parts.status(ref)["conditions"] if c["type"] == "Ready")
    assert (ready_condition["status"], ready_condition["reason"]) == ("False", "NamespaceNotEnabled")
    assert "kubectl create rolebinding vmclock-tenant" in ready_condition["message"]
    assert not parts.sim.stats.writes
    assert not [r for r in caplog.records if r.exc_info], "logged as an operator failure"


async def test_a_restore_finishes_when_the_namespace_withdrew_configmap_access(parts: Parts) -> None:
    """A namespace deletion removes the operator's RoleBinding before the policy's finalizer goes: the restore
    (its record cached in memory) still puts every VM back, and tidying the record, now forbidden, is left
    to the garbage collector instead of holding the deletion (and the namespace) forever."""
    vms = parts.host_vms(3)
    ref = parts.policy("p", vms, deletionPolicy="Restore")
    parts.controller.enqueue(ref)
    await parts.settle(lambda: set(phases(parts.status(ref)).values()) == {"Applied"})

    async def forbidden(*_: Any, **__: Any) -> Any:
        raise Forbidden(403, "Forbidden", "ConfigMap")

    parts.kube.get_config_map = forbidden  # type: ignore[method-assign]
    parts.kube.delete_config_map = forbidden  # type: ignore[method-assign]
    assert await parts.deleted(ref, 10.0), "the deletion was held by a record it may no longer tidy"
    assert all(parts.sim.state.track_of(u) == "host" for u in vms)
