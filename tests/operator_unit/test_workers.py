"""PolicyWorker and ConnectionWorker around failures and deletions: what they leave scheduled when a call
raises, and which body a deletion restores from.

The Kubernetes API is an in-memory stand-in (the only thing not real here); ZStack is the simulator over
loopback, reached through the real ConnectionManager and client."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Mapping
from typing import Any

import kopf
import pytest
from kopf._core.engines import posting
from prometheus_client import CollectorRegistry

from vmclock.connections import ConnectionManager
from vmclock.engine.spec import CONNECTION_PLURAL, POLICY_PLURAL
from vmclock.kopfapp.connections import BROKEN_RECHECK_FIRST, ConnectionWorker
from vmclock.kopfapp.liveness import Heartbeats
from vmclock.kopfapp.metrics import Metrics
from vmclock.kopfapp.policies import PolicyWorker
from vmclock.kopfapp.scheduler import RETRY_BASE_SECONDS, ResyncScheduler
from vmclock.kubeapi import KubeApi, KubeApiError, KubeObject
from vmclock.simulator import Simulator, SimulatorConfig

SECRET_VALUE = "s3cr3t-Pa55"
POLICY = ("ns", "p")
CONNECTION = ("ns", "default")


class FakeKube(KubeApi):
    """Objects by (plural, namespace, name); `failing` makes every call raise, as an API outage would."""

    def __init__(self) -> None:
        super().__init__()
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.secrets: dict[tuple[str, str], KubeObject] = {}
        self.failing: KubeApiError | None = None

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
        self, plural: str, namespace: str, name: str, status_patch: Mapping[str, Any]
    ) -> bool:
        self._check()
        found = self.objects.get((plural, namespace, name))
        if found is None:
            return False
        status = found.setdefault("status", {})
        for key, value in status_patch.items():
            if value is None:
                status.pop(key, None)
            else:
                status[key] = value
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def no_event_posting() -> None:
    """kopf.event() needs the operator's settings; outside a running operator, posting is switched off."""
    settings = kopf.OperatorSettings()
    settings.posting.enabled = False
    posting.settings_var.set(settings)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    config = SimulatorConfig(vms=3, accounts={"admin": SECRET_VALUE}, job_latency=0.0)
    async with Simulator(config) as running:
        yield running


def policy_body(vm: str, status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "vmclock.zstack.io/v1alpha1",
        "kind": "VmClockPolicy",
        "metadata": {
            "namespace": POLICY[0],
            "name": POLICY[1],
            "uid": "uid-p",
            "generation": 1,
            "creationTimestamp": "2026-05-01T12:00:00Z",
        },
        "spec": {"track": "guest", "vmUuids": [vm], "deletionPolicy": "Restore"},
        "status": status or {},
    }


def connection_body(endpoint: str) -> dict[str, Any]:
    return {
        "metadata": {"namespace": CONNECTION[0], "name": CONNECTION[1], "generation": 1},
        "spec": {"endpoint": endpoint, "credentialsSecretRef": {"name": "creds"}},
    }


def changed_vm(sim: Simulator, kube: FakeKube) -> tuple[str, dict[str, Any]]:
    """A VM the policy moved from host to guest, the status recording that, and a reachable connection."""
    vm = sim.state.vm_uuids()[0]
    sim.state.set_track_behind(vm, "guest")
    kube.objects[(CONNECTION_PLURAL, *CONNECTION)] = connection_body(sim.endpoint)
    entry = {"uuid": vm, "phase": "Applied", "observedTrack": "guest", "previousTrack": "host"}
    return vm, {"vms": [entry]}


@pytest.fixture
async def parts() -> AsyncIterator[tuple[FakeKube, ConnectionManager, ResyncScheduler, Metrics, Clock]]:
    kube = FakeKube()
    kube.secrets[("ns", "creds")] = KubeObject(
        "1", {"accountName": b"admin", "password": SECRET_VALUE.encode()}
    )
    manager = ConnectionManager(kube)
    clock = Clock()
    yield kube, manager, ResyncScheduler(clock=clock), Metrics(CollectorRegistry()), clock
    await manager.close_all()


async def test_a_failing_policy_reconcile_backs_off_instead_of_rerunning_every_tick(
    parts: tuple[FakeKube, ConnectionManager, ResyncScheduler, Metrics, Clock],
) -> None:
    kube, manager, scheduler, metrics, clock = parts
    worker = PolicyWorker(kube, manager, scheduler, metrics)
    scheduler.kick(POLICY, CONNECTION)
    assert scheduler.is_due(POLICY, 300)
    kube.failing = KubeApiError(500, "InternalError", "vmclockpolicies ns/p")

    with pytest.raises(KubeApiError):
        await worker.reconcile(POLICY, [], from_resync=True)
    assert not scheduler.is_due(POLICY, 300)  # the resync loop's next tick leaves it alone
    clock.now += RETRY_BASE_SECONDS
    assert scheduler.is_due(POLICY, 300)

    with pytest.raises(KubeApiError):
        await worker.reconcile(POLICY, [], from_resync=True)
    clock.now += RETRY_BASE_SECONDS
    assert not scheduler.is_due(POLICY, 300)  # backing off: the second retry waits twice as long
    clock.now += RETRY_BASE_SECONDS
    assert scheduler.is_due(POLICY, 300)


async def test_a_connection_check_that_raises_counts_as_a_failure_and_backs_off(
    sim: Simulator, parts: tuple[FakeKube, ConnectionManager, ResyncScheduler, Metrics, Clock]
) -> None:
    kube, manager, scheduler, metrics, clock = parts
    policies = PolicyWorker(kube, manager, scheduler, metrics)
    heartbeats = Heartbeats()
    worker = ConnectionWorker(kube, manager, policies, scheduler, metrics, heartbeats=heartbeats, clock=clock)
    kube.failing = KubeApiError(503, "ServiceUnavailable", "secrets ns/creds")

    with pytest.raises(KubeApiError):
        await worker.check(connection_body(sim.endpoint), {})
    assert not worker._check_due(CONNECTION)
    clock.now += BROKEN_RECHECK_FIRST
    assert worker._check_due(CONNECTION)

    kube.failing = None
    kube.objects[(CONNECTION_PLURAL, *CONNECTION)] = connection_body(sim.endpoint)
    assert (await worker.check(connection_body(sim.endpoint), {})).ready


async def test_deletion_restores_from_the_object_as_read_under_the_lock_not_the_event_body(
    sim: Simulator, parts: tuple[FakeKube, ConnectionManager, ResyncScheduler, Metrics, Clock]
) -> None:
    """A resync recorded previousTrack after kopf read the deletion event: restore must still see it."""
    kube, manager, scheduler, metrics, _ = parts
    vm, recorded = changed_vm(sim, kube)
    kube.objects[(POLICY_PLURAL, *POLICY)] = policy_body(vm, recorded)

    await PolicyWorker(kube, manager, scheduler, metrics).restore(policy_body(vm), [])
    assert sim.state.track_of(vm) == "host"


async def test_deletion_of_an_object_already_gone_falls_back_to_the_event_body(
    sim: Simulator, parts: tuple[FakeKube, ConnectionManager, ResyncScheduler, Metrics, Clock]
) -> None:
    kube, manager, scheduler, metrics, _ = parts
    vm, recorded = changed_vm(sim, kube)

    await PolicyWorker(kube, manager, scheduler, metrics).restore(policy_body(vm, recorded), [])
    assert sim.state.track_of(vm) == "host"
