"""PolicyController and ConnectionWorker: the core loop's guarantees (design.md §5), each shown directly.

The Kubernetes API is an in-memory stand-in (the only thing not real here: it checks uid preconditions the way
the API server does); ZStack is the simulator over loopback, reached through the real ConnectionManager and
client; the work queue, workers, shared observation and engine are the real ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf
import pytest
from kopf._core.engines import posting
from prometheus_client import CollectorRegistry, generate_latest

from vmclock.connections import ConnectionManager
from vmclock.connections.trust import ALLOWED_ENDPOINTS_ANNOTATION, EndpointPolicy
from vmclock.engine.records import decode_record
from vmclock.engine.spec import CONNECTION_PLURAL, POLICY_PLURAL
from vmclock.kopfapp.claims import IndexedPolicy, index_entry
from vmclock.kopfapp.connectionindex import IndexedConnection, connection_entry
from vmclock.kopfapp.connections import ConnectionWorker
from vmclock.kopfapp.controller import PolicyController, StatusSink
from vmclock.kopfapp.liveness import Heartbeats
from vmclock.kopfapp.metrics import Metrics
from vmclock.kopfapp.records import KEY as RECORD_KEY
from vmclock.kopfapp.runtimes import Runtimes
from vmclock.kopfapp.triggers import Trigger
from vmclock.kubeapi import Gone, KubeApi, KubeApiError, KubeObject, Stale, Written
from vmclock.refs import Ref
from vmclock.simulator import Simulator, SimulatorConfig

from .test_connections import seconds_pass

SECRET_VALUE = "s3cr3t-Pa55"
DELETED_AT = "2026-05-01T13:00:00Z"
NS = "ns"
CONNECTION = Ref(NS, "default")


class FakeKube(KubeApi):
    """Objects by (plural, namespace, name); `failing` makes every call raise, as an API outage would;
    `on_patch` sees every status patch before it lands. Guarded status writes test uid and resourceVersion,
    and ConfigMaps check resourceVersion and uid, as the API server does (KubeApi's typed answers)."""

    def __init__(self) -> None:
        super().__init__()
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.secrets: dict[tuple[str, str], KubeObject] = {}
        self.config_maps: dict[tuple[str, str], dict[str, Any]] = {}
        self.failing: KubeApiError | None = None
        self.patches: list[tuple[str, dict[str, Any]]] = []
        self.on_patch: Callable[[str, Mapping[str, Any]], None] = lambda name, patch: None
        self._versions = itertools.count(1)

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
        self._check()
        found = self.objects.get((plural, namespace, name))
        if found is None or found["metadata"].get("uid") != uid:
            raise Gone(404, "NotFound", f"{plural} {namespace}/{name}")
        if str(found["metadata"].get("resourceVersion") or "") != resource_version:
            what = f"{plural} {namespace}/{name}"
            raise Stale(422, "precondition failed", what, current=copy.deepcopy(found))
        whole = {k: v for k, v in status.items() if v is not None}
        self.on_patch(name, whole)
        self.patches.append((name, copy.deepcopy(whole)))
        found["status"] = copy.deepcopy(whole)
        found["metadata"]["resourceVersion"] = str(next(self._versions))
        return Written(found["metadata"]["resourceVersion"])

    def _stamp(self, namespace: str, body: Mapping[str, Any], uid: str) -> dict[str, Any]:
        stored = copy.deepcopy(dict(body))
        stored["metadata"].update(resourceVersion=str(next(self._versions)), uid=uid)
        self.config_maps[(namespace, stored["metadata"]["name"])] = stored
        return copy.deepcopy(stored)

    async def get_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._check()
        found = self.config_maps.get((namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def create_config_map(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._check()
        if (namespace, body["metadata"]["name"]) in self.config_maps:
            raise Stale(409, "AlreadyExists", "ConfigMap")
        return self._stamp(namespace, body, f"cm-{next(self._versions)}")

    async def replace_config_map(self, namespace: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._check()
        found = self.config_maps.get((namespace, name))
        if found is None:
            raise Gone(404, "NotFound", "ConfigMap")
        if body["metadata"].get("resourceVersion") != found["metadata"]["resourceVersion"]:
            raise Stale(409, "Conflict", "ConfigMap")
        return self._stamp(namespace, body, found["metadata"]["uid"])

    async def delete_config_map(self, namespace: str, name: str, *, uid: str, resource_version: str) -> bool:
        self._check()
        found = self.config_maps.get((namespace, name))
        if found is None:
            return False
        if (uid, resource_version) != (found["metadata"]["uid"], found["metadata"]["resourceVersion"]):
            raise Stale(409, "Conflict", "ConfigMap")
        del self.config_maps[(namespace, name)]
        return True

    def _check(self) -> None:
        if self.failing is not None:
            raise self.failing

    async def read_secret(self, namespace: str, name: str) -> KubeObject | None:
        self._check()
        return self.secrets.get((namespace, name))

    async def read_config_map(self, namespace: str, name: str) -> KubeObject | None:
        self._check()
        return None

    async def read_object(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        self._check()
        found = self.objects.get((plural, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def patch_status(
        self,
        plural: str,
        namespace: str,
        name: str,
        status_patch: Mapping[str, Any],
        *,
        uid: str | None = None,
        status: Mapping[str, Any] | None = None,
    ) -> bool:
        self._check()
        found = self.objects.get((plural, namespace, name))
        if found is None:
            return False
        if uid and found["metadata"].get("uid") != uid:
            raise Stale(422, "precondition failed", f"{plural} {namespace}/{name}")
        self.on_patch(name, status_patch)
        self.patches.append((name, copy.deepcopy(dict(status_patch))))
        status = found.setdefault("status", {})
        for key, value in status_patch.items():
            if value is None:
                status.pop(key, None)
            else:
                status[key] = value
        return True


class FakeIndex(dict[Ref, list[IndexedPolicy]]):
    """kopf's index shape (key -> store of values), kept in step with FakeKube's policies by `sync`, which
    calls the controllers' indexing handler for each policy and `deleted` for each one gone, as kopf's
    watch events would; `connections` is the connections' index, kept in step the same way."""

    def __init__(self) -> None:
        super().__init__()
        self.controllers: list[PolicyController] = []
        self.connections: dict[Ref, list[IndexedConnection]] = {}
        self._indexed: set[str] = set()  # the uids of the policies indexed so far

    def serve(self, controller: PolicyController, kube: FakeKube) -> None:
        """The controller's handlers get these indexes (kopf passes them to every handler), filled from the
        objects there are, as kopf's initial listing does."""
        self.controllers.append(controller)
        controller.bind(self, self.connections)  # type: ignore[arg-type]
        self.sync(kube)

    def sync(self, kube: FakeKube) -> None:
        self.clear()
        self.connections.clear()
        present: set[str] = set()
        for (plural, _, _), body in kube.objects.items():
            if plural == CONNECTION_PLURAL:
                for controller in self.controllers:
                    controller.connection_indexed(body)  # as kopf calls the handler on each event
                for key, connection in connection_entry(body).items():
                    self.connections.setdefault(key, []).append(connection)
            if plural == POLICY_PLURAL:
                present.add(str(body["metadata"].get("uid") or ""))
                for key, entry in index_entry(body).items():
                    self.setdefault(key, []).append(entry)
                for controller in self.controllers:
                    controller.indexed(body)
        for uid in self._indexed - present:
            for controller in self.controllers:
                controller.claims.drop(uid)
        self._indexed = present


def secret(version: str, sim: Simulator) -> KubeObject:
    data = {"accountName": b"admin", "password": SECRET_VALUE.encode()}
    return KubeObject(version, data, {ALLOWED_ENDPOINTS_ANNOTATION: sim.endpoint})


@pytest.fixture(autouse=True)
def no_event_posting() -> None:
    """kopf.event() needs the operator's settings; outside a running operator, posting is switched off."""
    settings = kopf.OperatorSettings()
    settings.posting.enabled = False
    posting.settings_var.set(settings)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    config = SimulatorConfig(vms=40, accounts={"admin": SECRET_VALUE}, job_latency=0.02)
    async with Simulator(config) as running:
        yield running


@dataclass
class Parts:
    kube: FakeKube
    index: FakeIndex
    manager: ConnectionManager
    metrics: Metrics
    controller: PolicyController
    sim: Simulator

    def policy(self, name: str, vms: list[str], *, uid: str = "", **spec: Any) -> Ref:
        self.kube.objects[(POLICY_PLURAL, NS, name)] = {
            "metadata": {
                "namespace": NS,
                "name": name,
                "uid": uid or f"uid-{name}",
                "generation": 1,
                "creationTimestamp": "2026-05-01T12:00:00Z",
            },
            "spec": {"track": "guest", "vmUuids": vms, **spec},
        }
        self.index.sync(self.kube)
        return Ref(NS, name)

    def due(self, ref: Ref) -> bool:
        """A resync is scheduled for the policy (its reconcile finished)."""
        runtime = self.controller.runtimes.get(ref)
        return runtime is not None and runtime.due is not None

    def uid(self, ref: Ref) -> str:
        return str(self.kube.objects[(POLICY_PLURAL, *ref)]["metadata"]["uid"])

    async def deleted(self, ref: Ref, within: float) -> bool:
        """Mark the policy deleted (deletionTimestamp) and run kopf's deletion handler once."""
        self.kube.objects[(POLICY_PLURAL, *ref)]["metadata"]["deletionTimestamp"] = DELETED_AT
        return await self.controller.wait_restored(ref, self.uid(ref), within)

    def status(self, ref: Ref) -> dict[str, Any]:
        status: dict[str, Any] = self.kube.objects[(POLICY_PLURAL, *ref)].get("status", {})
        return status

    def host_vms(self, count: int) -> list[str]:
        return [u for u in self.sim.state.vm_uuids() if self.sim.state.track_of(u) == "host"][:count]

    async def settle(self, done: Callable[[], bool], within: float = 10.0) -> None:
        """Poll state that other tasks change (no event to wait for: those tasks are the code under test)."""
        deadline = asyncio.get_running_loop().time() + within
        while not done():
            assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running_parts(sim: Simulator, kube: FakeKube) -> AsyncIterator[Parts]:
    """A controller with its workers on `kube` (a FakeKube or a richer subclass) and the simulator."""
    kube.secrets[(NS, "creds")] = secret("1", sim)
    kube.objects[(CONNECTION_PLURAL, *CONNECTION)] = {
        "metadata": {"namespace": NS, "name": CONNECTION.name, "generation": 1, "uid": "uid-c"},
        "spec": {"endpoint": sim.endpoint, "credentialsSecretRef": {"name": "creds"}},
    }
    manager = ConnectionManager(kube, endpoints=EndpointPolicy(allow_insecure=True))
    metrics = Metrics(CollectorRegistry())
    controller = PolicyController(kube, manager, metrics, workers=4)
    index = FakeIndex()
    index.serve(controller, kube)
    controller.start()
    yield Parts(kube, index, manager, metrics, controller, sim)
    await controller.stop()
    await manager.close_all()


@pytest.fixture
async def parts(sim: Simulator) -> AsyncIterator[Parts]:
    async with running_parts(sim, FakeKube()) as made:
        yield made


def reconcile_starts(parts: Parts) -> list[str]:
    """The names of the policies in the order their reconciles begin from now on (each begins by reading
    its policy)."""
    started: list[str] = []
    read_object = parts.kube.read_object

    async def reading(plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        if plural == POLICY_PLURAL and name not in started:
            started.append(name)
        return await read_object(plural, namespace, name)

    parts.kube.read_object = reading  # type: ignore[method-assign]
    return started


def ready(status: Mapping[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))


def phases(status: Mapping[str, Any]) -> dict[str, str]:
    return {e["uuid"]: e["phase"] for e in status.get("vms", [])}


async def test_previous_track_is_recorded_before_the_first_write(parts: Parts) -> None:
    vms = parts.host_vms(20)
    seen_at_intent: list[set[str]] = []
    real_stamp = parts.kube._stamp

    def stamp(namespace: str, body: Mapping[str, Any], uid: str) -> dict[str, Any]:
        record = body["data"].get(RECORD_KEY)  # the restarts ConfigMap has another key
        if record is not None and decode_record(record) == dict.fromkeys(vms, "host") and not seen_at_intent:
            seen_at_intent.append({w.uuid for w in parts.sim.stats.writes})
        return real_stamp(namespace, body, uid)

    parts.kube._stamp = stamp  # type: ignore[method-assign]
    ref = parts.policy("p", vms)
    parts.controller.enqueue(ref)
    await parts.settle(lambda: set(phases(parts.status(ref)).values()) == {"Applied"})
    assert seen_at_intent == [set()], "every previousTrack was recorded before any VM was written"
    assert {e["uuid"]: e["previousTrack"] for e in parts.status(ref)["vms"]} == dict.fromkeys(vms, "host")


async def test_a_new_policy_applied_quickly_writes_its_status_once(parts: Parts) -> None:
    """Many small policies cost like one big one only if each does not write status three times (a
    Reconciling mark, the intent, the verdict), each coming back to kopf as a watch event: a new policy has
    no verdict to hide, and its intent is on record (above) before its writes, so it writes the verdict."""
    ref = parts.policy("p", parts.host_vms(5))
    parts.controller.enqueue(ref)
    await parts.settle(lambda: parts.due(ref))
    assert [ready(status) for name, status in parts.kube.patches if name == "p"] == [True]


async def test_a_request_during_a_reconcile_runs_it_again_and_no_two_run_at_once(parts: Parts) -> None:
    ref = parts.policy("p", parts.host_vms(5))
    reads = 0
    real_read = parts.kube.read_object

    async def counting(plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        nonlocal reads
        if plural == POLICY_PLURAL:
            reads += 1
            assert not parts.controller.queue.is_processing(Ref("x", "y"))
        return await real_read(plural, namespace, name)

    parts.kube.read_object = counting  # type: ignore[method-assign]
    parts.controller.enqueue(ref)
    await parts.settle(lambda: parts.controller.queue.is_processing(ref))
    for _ in range(5):
        parts.controller.enqueue(ref)  # all while it runs: coalesced into exactly one more run
    await parts.settle(lambda: ref not in parts.controller.queue or not parts.controller.queue.pending())
    await parts.settle(lambda: not parts.controller.queue.is_processing(ref))
    await asyncio.sleep(0.2)
    assert reads == 2


async def test_many_small_policies_share_one_observation(parts: Parts) -> None:
    vms = parts.sim.state.vm_uuids()[:40]
    refs = [parts.policy(f"p{i}", vms[i * 4 : i * 4 + 4]) for i in range(10)]
    for ref in refs:
        parts.controller.enqueue(ref)
    await parts.settle(lambda: all(ready(parts.status(r)) for r in refs))
    await parts.settle(lambda: not any(parts.controller.queue.is_processing(r) for r in refs))
    for ref in refs:
        runtime = parts.controller.runtimes.get(ref)
        assert runtime is not None
        parts.controller.runtimes.schedule(runtime, 0.0)  # all due now
    parts.sim.stats.reset()
    parts.controller.start_round(CONNECTION, _connection_spec(parts))
    await asyncio.sleep(0.5)
    await parts.settle(lambda: not any(parts.controller.queue.is_processing(r) for r in refs))
    reads = parts.sim.stats.calls["QueryVmInstance"]
    assert reads == 1, f"one batched read for 10 policies, not one per policy ({parts.sim.stats.calls})"


async def test_a_new_generation_stops_unsent_writes_of_the_old(parts: Parts, sim: Simulator) -> None:
    sim.faults.latency = 0.05
    parts.kube.objects[(CONNECTION_PLURAL, *CONNECTION)]["spec"]["maxConcurrentRequests"] = 1  # 4 in flight
    vms = parts.host_vms(40)
    assert len(vms) > 12
    ref = parts.policy("p", vms)
    parts.controller.enqueue(ref)
    await parts.settle(lambda: len(sim.stats.writes) >= 2)
    body = parts.kube.objects[(POLICY_PLURAL, *ref)]
    body["metadata"]["generation"] = 2
    body["spec"]["track"] = "host"
    parts.index.sync(parts.kube)
    parts.controller.enqueue(ref, uid="uid-p", generation=2)
    await parts.settle(
        lambda: parts.status(ref).get("observedGeneration") == 2 and not parts.controller.queue.pending()
    )
    await parts.settle(lambda: not parts.controller.queue.is_processing(ref))
    stale = [w for w in sim.stats.writes if w.track == "guest"]
    assert len(stale) <= 2 + 2 * 4, "writes of the stale generation stopped when the spec changed"
    assert all(sim.state.track_of(u) == "host" for u in vms)
    assert len({w.uuid for w in stale}) == len(stale), "no VM was written twice for the stale generation"


async def test_a_status_write_never_lands_on_a_recreated_object(parts: Parts, sim: Simulator) -> None:
    sim.faults.latency = 0.05
    ref = parts.policy("p", parts.host_vms(30))
    parts.controller.enqueue(ref)
    await parts.settle(lambda: len(sim.stats.writes) >= 1)
    recreated = parts.policy("p", parts.host_vms(30)[:1], uid="uid-new")  # same name, new object
    await parts.settle(lambda: parts.status(recreated).get("summary", {}).get("total") == 1, within=20)
    assert all(name == "p" for name, _ in parts.kube.patches)
    assert len(parts.status(recreated)["vms"]) == 1, "only the new object's own reconcile wrote its status"


async def test_a_gone_policy_is_forgotten_everywhere(parts: Parts) -> None:
    ref = parts.policy("p", parts.host_vms(2))
    body = parts.kube.objects[(POLICY_PLURAL, *ref)]
    parts.controller.triggers.note("ADDED", body)  # what the registry's handler remembers as it enqueues
    parts.controller.enqueue(ref)
    await parts.settle(lambda: parts.due(ref))
    assert ref in parts.metrics._objects.policies
    del parts.kube.objects[(POLICY_PLURAL, *ref)]
    parts.index.sync(parts.kube)
    parts.controller.enqueue(ref)
    await parts.settle(lambda: parts.controller.runtimes.get(ref) is None)
    assert ref not in parts.metrics._objects.policies
    assert ref not in parts.controller.queue
    late = {**body, "status": {"observedGeneration": 1}}  # kopf may still hold our own last status write
    assert parts.controller.triggers.check("MODIFIED", late) is None, "a late event is no first sight"
    parts.controller.deleted(ref, str(body["metadata"]["uid"]))
    assert parts.controller.triggers.check(None, body) is Trigger.LISTED, "its DELETED event forgets it"


async def test_restore_is_a_promise_kept_once_zstack_answers_again(parts: Parts, sim: Simulator) -> None:
    vms = parts.host_vms(3)
    ref = parts.policy("p", vms, deletionPolicy="Restore")
    parts.controller.enqueue(ref)
    await parts.settle(lambda: set(phases(parts.status(ref)).values()) == {"Applied"})
    sim.faults.set_error_rate("*", 1.0, "SYS.1007")  # terminal errors on every call: not retryable
    assert not await parts.deleted(ref, 1.0)
    ready = next(c for c in parts.status(ref)["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "RestorePending")
    assert "SYS.1007" in ready["message"]
    assert "Orphan" in ready["message"], "the condition tells the person how to give up instead"
    assert parts.controller.queue.failures(ref) >= 1, "it keeps trying, with backoff"
    sim.faults.clear()
    assert await parts.controller.wait_restored(ref, parts.uid(ref), 15.0)
    assert all(sim.state.track_of(u) == "host" for u in vms)


async def test_restore_uses_last_known_good_credentials_when_the_connection_is_gone(
    parts: Parts, sim: Simulator
) -> None:
    vms = parts.host_vms(3)
    ref = parts.policy("p", vms, deletionPolicy="Restore")
    parts.controller.enqueue(ref)
    await parts.settle(lambda: set(phases(parts.status(ref)).values()) == {"Applied"})
    del parts.kube.objects[(CONNECTION_PLURAL, *CONNECTION)]  # a namespace deletion took both
    del parts.kube.secrets[(NS, "creds")]
    assert await parts.deleted(ref, 10.0)
    assert all(sim.state.track_of(u) == "host" for u in vms)


async def test_a_connection_is_kept_while_a_restore_policy_needs_it(parts: Parts) -> None:
    worker = ConnectionWorker(
        parts.kube, parts.manager, parts.controller, parts.metrics, heartbeats=Heartbeats()
    )
    parts.policy("p", parts.host_vms(1), deletionPolicy="Restore")
    body = kopf.Body(parts.kube.objects[(CONNECTION_PLURAL, *CONNECTION)])  # type: ignore[arg-type]
    with pytest.raises(kopf.TemporaryError, match="Restore"):
        await worker.release(body)
    del parts.kube.objects[(POLICY_PLURAL, NS, "p")]
    parts.index.sync(parts.kube)
    await worker.release(body)


async def test_a_secret_rotation_mid_apply_fails_nothing_and_is_used_within_seconds(
    parts: Parts, sim: Simulator
) -> None:
    sim.faults.latency = 0.02
    vms = parts.host_vms(40)
    ref = parts.policy("p", vms)
    parts.controller.enqueue(ref)
    await parts.settle(lambda: len(sim.stats.writes) >= 3)
    parts.kube.secrets[(NS, "creds")] = secret("2", sim)
    seconds_pass(parts.manager)
    parts.controller.enqueue(ref)
    await parts.settle(
        lambda: (
            len(phases(parts.status(ref))) == len(vms)
            and set(phases(parts.status(ref)).values()) <= {"Applied", "InSync"}
        ),
        within=20,
    )
    assert "Failed" not in phases(parts.status(ref)).values()
    entry = parts.manager._entries[(NS, CONNECTION.name)]
    assert entry.fingerprint is not None
    assert entry.fingerprint[1] == "2", "the rotated Secret is in use"


def _connection_spec(parts: Parts) -> Any:
    from vmclock.connections import parse_connection_spec  # noqa: PLC0415

    return parse_connection_spec(parts.kube.objects[(CONNECTION_PLURAL, *CONNECTION)]["spec"])


async def test_a_claim_that_cannot_act_blocks_nobody(parts: Parts) -> None:
    """design.md §6.3: an older policy of another tenant listing our VMs through a connection that is not
    Ready (or in Observe mode) owns nothing; our status never names it (§6.4)."""
    vms = parts.host_vms(3)
    elder = {
        "metadata": {
            "namespace": "tenant-b",
            "name": "squatter",
            "uid": "uid-b",
            "generation": 1,
            "creationTimestamp": "2020-01-01T00:00:00Z",
        },
        "spec": {"track": "host", "vmUuids": vms, "connectionRef": {"name": "nowhere"}},
        "status": {"vms": [{"uuid": u, "phase": "InSync", "observedTrack": "host"} for u in vms]},
    }
    parts.kube.objects[(POLICY_PLURAL, "tenant-b", "squatter")] = elder
    ref = parts.policy("p", vms)
    parts.controller.enqueue(ref)
    await parts.settle(lambda: set(phases(parts.status(ref)).values()) == {"Applied"})
    assert "tenant-b" not in repr(parts.status(ref))
    assert "squatter" not in repr(parts.status(ref))


async def test_reconciles_are_counted_by_result_and_report_the_observation(parts: Parts) -> None:
    ref = parts.policy("p", parts.host_vms(2))
    parts.controller.enqueue(ref)
    await parts.settle(lambda: ready(parts.status(ref)))
    await parts.settle(lambda: not parts.controller.queue.is_processing(ref))
    text = generate_latest(parts.metrics.registry).decode()
    assert 'controller_runtime_reconcile_total{controller="vmclockpolicy",result="success"} 1.0' in text
    assert 'vmclock_policy_ready{name="p",namespace="ns"} 1.0' in text
    assert 'vmclock_policy_resync_interval_seconds{name="p",namespace="ns"} 300.0' in text
    assert 'vmclock_policy_last_observation_timestamp_seconds{name="p",namespace="ns"}' in text
    assert 'controller_runtime_active_workers{controller="vmclockpolicy"} 0.0' in text
    parts.kube.failing = KubeApiError(503, "unavailable", "a test outage")
    parts.controller.enqueue(ref)
    # At least one: the failed reconcile is retried with backoff (a few ms at first), so a loaded machine may
    # count the retry too before this looks.
    errors = ("controller_runtime_reconcile_errors_total", {"controller": "vmclockpolicy"})
    await parts.settle(lambda: (parts.metrics.registry.get_sample_value(*errors) or 0.0) >= 1.0)


class CountingReads(FakeKube):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def read_object(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads += 1
        return await super().read_object(plural, namespace, name)


async def test_a_status_write_that_found_the_object_changed_does_not_read_it_again() -> None:
    """Each of 1,000 new small policies meets kopf's annotation patch once: the retry takes the object
    from the failed write's answer (tests/integration/test_kubeapi.py shows the API server's) instead of
    a second GET."""
    kube = CountingReads()
    kube.objects[(POLICY_PLURAL, NS, "p")] = {
        "metadata": {"namespace": NS, "name": "p", "uid": "uid-p", "resourceVersion": "2"},
        "spec": {"track": "guest", "vmUuids": []},
    }
    runtime = Runtimes().bind(Ref(NS, "p"), "uid-p")
    runtime.resource_version = "1"  # read before kopf patched its annotations
    await StatusSink(kube, runtime, {}).save({"observedGeneration": 1})
    assert kube.objects[(POLICY_PLURAL, NS, "p")]["status"] == {"observedGeneration": 1}
    assert kube.reads == 0


def test_a_rounds_policies_stay_due_together_however_long_each_took() -> None:
    """design.md §5.5: the policies of a round are read in one batch only if they are due together again;
    counted from each one's finish, 1,000 small checks finishing seconds apart drift into many small rounds,
    each with its own reads."""
    now = [100.0]
    runtimes = Runtimes(lambda: now[0])
    a, b = runtimes.bind(Ref(NS, "a"), "uid-a"), runtimes.bind(Ref(NS, "b"), "uid-b")
    runtimes.schedule(a, 10.0)
    runtimes.schedule(b, 10.0)
    now[0] = 110.0
    assert runtimes.round([(a.ref, 10.0), (b.ref, 10.0)]) == [a.ref, b.ref]
    now[0] = 110.5
    runtimes.schedule(a, 10.0)  # its check took half a second
    now[0] = 114.0
    runtimes.schedule(b, 10.0)  # this one waited for a worker behind 1,000 others
    assert a.due == b.due == 120.0
    now[0] = 120.0
    assert runtimes.round([(a.ref, 10.0), (b.ref, 10.0)]) == [a.ref, b.ref]
    now[0] = 128.0  # a round that ran long: the next check is still half an interval away, not at once
    runtimes.schedule(a, 10.0)
    assert a.due == 133.0
