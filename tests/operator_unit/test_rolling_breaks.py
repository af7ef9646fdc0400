"""Rolling restarts (issue 17) driven at their worst moments: each test shows a promise of README "Rolling
restarts" that today's code breaks.

The controller, its workers, the rollout, the ConfigMap record store, the connection manager and the ZStack
client are the real ones; ZStack is the simulator over loopback (its own record of every reboot is what is
asserted), Kubernetes is the in-memory FakeKube of test_controller.py. Only the wall clock the window is
judged by is a fake one, moved by the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from vmclock.connections import ConnectionManager
from vmclock.connections.trust import EndpointPolicy
from vmclock.engine.spec import CONNECTION_PLURAL, POLICY_PLURAL
from vmclock.kopfapp.controller import PolicyController
from vmclock.kopfapp.metrics import Metrics
from vmclock.refs import Ref
from vmclock.simulator import Simulator, SimulatorConfig
from vmclock.simulator.state import NewVm

from .test_connections import seconds_pass
from .test_controller import CONNECTION, NS, SECRET_VALUE, FakeIndex, FakeKube, no_event_posting, secret

__all__ = ["no_event_posting"]  # the autouse fixture switching kopf's event posting off

OPEN = datetime.fromisoformat("2026-12-05T02:30:00+00:00")  # a Saturday, 30 minutes into "0 2 * * 6" 4h
SCHEDULE = {"schedule": "0 2 * * 6", "duration": "4h", "timeZone": "UTC"}


class WallClock:
    """The operator's `now` (what the window is judged by), moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Rig:
    kube: FakeKube
    index: FakeIndex
    manager: ConnectionManager
    controller: PolicyController
    sim: Simulator
    clock: WallClock

    def windows_vms(self, count: int) -> list[str]:
        """Running Windows VMs on the host track: each write leaves it waiting for a restart."""
        state = self.sim.state
        found = [
            u
            for u in state.vm_uuids()
            if state.vm(u).platform == "Windows"
            and state.vm(u).state == "Running"
            and state.track_of(u) == "host"
        ]
        assert len(found) >= count, "the simulator has enough running Windows VMs on the host track"
        return sorted(found[:count])

    def rolling(self, name: str, vms: list[str], *, max_concurrent: int = 1, **spec: Any) -> Ref:
        self.kube.objects[(POLICY_PLURAL, NS, name)] = {
            "metadata": {
                "namespace": NS,
                "name": name,
                "uid": f"uid-{name}",
                "generation": 1,
                "creationTimestamp": "2026-05-01T12:00:00Z",
                "annotations": {},
            },
            "spec": {
                "track": "guest",
                "vmUuids": vms,
                "restart": {
                    "policy": "Rolling",
                    "maintenanceWindow": dict(SCHEDULE),
                    "maxConcurrent": max_concurrent,
                },
                **spec,
            },
        }
        self.index.sync(self.kube)
        return Ref(NS, name)

    def body(self, ref: Ref) -> dict[str, Any]:
        return self.kube.objects[(POLICY_PLURAL, *ref)]

    def rollout(self, ref: Ref) -> dict[str, Any]:
        conditions = self.body(ref).get("status", {}).get("conditions", [])
        return next((c for c in conditions if c["type"] == "Rollout"), {})

    def rebooted(self, since: float = 0.0) -> list[str]:
        """The VMs whose reboot ZStack started (finished or not) after `since` (epoch seconds), in order."""
        log = self.sim.stats.reboots
        started = [(r.start, r.uuid) for r in log.done] + [(at, u) for u, at in log.running.items()]
        return [uuid for at, uuid in sorted(started) if at > since]

    async def settle(self, done: Callable[[], bool], within: float = 15.0) -> None:
        deadline = asyncio.get_running_loop().time() + within
        while not done():
            assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def rig(
    *,
    reboot_seconds: float = 0.3,
    reconcile_seconds: float = 120.0,
    now: datetime = OPEN,
    job_latency: float = 0.02,
) -> AsyncIterator[Rig]:
    config = SimulatorConfig(
        vms=150, accounts={"admin": SECRET_VALUE}, job_latency=job_latency, reboot_seconds=reboot_seconds
    )
    async with Simulator(config) as sim:
        kube = FakeKube()
        kube.secrets[(NS, "creds")] = secret("1", sim)
        kube.objects[(CONNECTION_PLURAL, *CONNECTION)] = {
            "metadata": {"namespace": NS, "name": CONNECTION.name, "generation": 1, "uid": "uid-c"},
            "spec": {"endpoint": sim.endpoint, "credentialsSecretRef": {"name": "creds"}},
        }
        manager = ConnectionManager(kube, endpoints=EndpointPolicy(allow_insecure=True))
        clock = WallClock(now)
        controller = PolicyController(
            kube,
            manager,
            Metrics(CollectorRegistry()),
            workers=4,
            reconcile_seconds=reconcile_seconds,
            now=clock,
        )
        index = FakeIndex()
        index.serve(controller, kube)
        try:
            yield Rig(kube, index, manager, controller, sim, clock)
        finally:
            await controller.stop()
            await manager.close_all()


PAUSED = "vmclock.zstack.io/paused"
RESUME = "vmclock.zstack.io/reconcile-requested-at"


def bump(rig_: Rig, ref: Ref, **spec: Any) -> None:
    """A spec edit as the API server stores it (a new generation), then kopf's spec handler."""
    body = rig_.body(ref)
    body["metadata"]["generation"] += 1
    body["spec"].update(spec)
    rig_.index.sync(rig_.kube)
    rig_.controller.enqueue(ref, uid=body["metadata"]["uid"], generation=body["metadata"]["generation"])


async def test_pausing_mid_rollout_stops_the_reboots_not_yet_sent() -> None:
    """Scenario: a Rolling policy reboots 4 VMs one at a time; while the first is rebooting, a person sets
    the paused annotation (kopf's annotation handler enqueues the policy at once).

    Promise broken: "Nothing is rebooted while the policy is paused". The slice that was running when the
    annotation landed goes on rebooting every VM left, one after the other, for as long as its reconcile
    lasts (up to 2 minutes), because its stop gate knows deletion and new generations, not a pause."""
    async with rig(reboot_seconds=0.5) as r:
        vms = r.windows_vms(4)
        ref = r.rolling("p", vms)
        r.controller.enqueue(ref)
        await r.settle(lambda: vms[0] in r.sim.stats.reboots.running)
        r.body(ref)["metadata"]["annotations"][PAUSED] = "true"
        r.controller.enqueue(ref)
        paused_at = time.time()
        await r.settle(lambda: r.rollout(ref).get("reason") == "Blocked", within=20)
        assert r.rebooted(since=paused_at) == [], "VMs rebooted after the policy was paused"


async def test_a_vm_an_older_policy_takes_over_mid_rollout_is_not_rebooted() -> None:
    """Scenario: a Rolling policy reboots 4 VMs one at a time; while the first is rebooting, an older policy
    (created in 2020, track host) adds the last of them to its vmUuids and takes it over: its reconcile
    writes host onto it and its status lists it as its own.

    Promise broken: "never reboots a VM another policy owns". The young policy's slice still works from the
    candidates its reconcile read before the takeover, and reboots the VM the older policy now owns."""
    async with rig(reboot_seconds=0.5) as r:
        vms = r.windows_vms(4)
        spare = [u for u in r.sim.state.vm_uuids() if u not in vms][:2]
        young = r.rolling("young", vms)
        elder = r.rolling("elder", spare)
        elder_body = r.body(elder)
        elder_body["metadata"]["creationTimestamp"] = "2020-01-01T00:00:00Z"
        elder_body["spec"]["track"] = "host"
        del elder_body["spec"]["restart"]
        r.index.sync(r.kube)
        r.controller.enqueue(elder)
        await r.settle(lambda: r.body(elder).get("status", {}).get("observedGeneration") == 1)
        r.controller.enqueue(young)
        await r.settle(lambda: vms[0] in r.sim.stats.reboots.running)

        taken = vms[-1]
        bump(r, elder, vmUuids=[*spare, taken])

        def elder_owns() -> bool:
            entries = {e["uuid"]: e for e in r.body(elder).get("status", {}).get("vms", [])}
            return entries.get(taken, {}).get("phase") in ("Applied", "InSync")

        await r.settle(elder_owns)
        owned_since = time.time()
        assert r.sim.state.track_of(taken) == "host", "the older policy wrote its own track onto the VM"
        await r.settle(lambda: not r.controller.queue.is_processing(young), within=20)
        assert taken not in r.rebooted(since=owned_since), (
            f"VM {taken} was rebooted by 'young' after the older policy 'elder' owned it "
            f"(reboots after the takeover: {r.rebooted(since=owned_since)})"
        )


async def test_a_connection_lost_between_the_intent_and_the_reboot_does_not_strand_the_vm() -> None:
    """Scenario: a Rolling policy reboots 3 VMs one at a time; while the first is rebooting, the
    connection's Secret is revoked (deleted). The next batch records its VM's intent, then cannot lease the
    connection: nothing is sent. The Secret comes back and the window stays open for hours.

    Promises broken: a reboot intent is recorded only for a reboot that may have left ("intent before
    action", design.md §5.4: the record covers a send, not a send that provably never happened), and
    "Rolling reboots them inside the window". The second VM is recorded as sent although no request left,
    so it is only waited for, is never rebooted, holds the rollout's one slot, and ten minutes later halts
    the rollout as a VM that "was sent a reboot and is not Running again"."""
    async with rig(reboot_seconds=0.5) as r:
        vms = r.windows_vms(3)
        ref = r.rolling("p", vms)
        r.controller.enqueue(ref)
        await r.settle(lambda: vms[0] in r.sim.stats.reboots.running)
        creds = r.kube.secrets.pop((NS, "creds"))
        seconds_pass(r.manager)
        await r.settle(lambda: vms[0] not in r.sim.stats.reboots.running)
        await r.settle(lambda: not r.controller.queue.is_processing(ref))

        r.kube.secrets[(NS, "creds")] = creds  # the Secret is back; the window has hours to go
        seconds_pass(r.manager)
        r.clock.now = OPEN + timedelta(minutes=11)
        r.controller.enqueue(ref)
        await r.settle(lambda: r.rollout(ref).get("reason") in ("Complete", "Halted"), within=20)
        rollout = r.rollout(ref)
        assert sorted(r.rebooted()) == vms, f"rebooted {r.rebooted()} of {vms}; Rollout: {rollout}"
        assert rollout.get("reason") == "Complete", rollout


async def test_moving_the_window_mid_rollout_keeps_the_reboots_out_within_max_concurrent() -> None:
    """Scenario: maxConcurrent 1; a reboot that takes a while is out when a person moves the window's
    opening from 02:00 to 02:30 (it is 02:40: the window is still open, now since 02:30).

    Promise broken: "maxConcurrent: at most this many of the policy's VMs rebooting at a time". The new
    window start wipes the record, so the reboot still out is forgotten and the next VM is rebooted beside
    it: two at once (the simulator's own count of reboots running together)."""
    async with rig(reboot_seconds=4.0, reconcile_seconds=1.0, now=OPEN + timedelta(minutes=10)) as r:
        vms = r.windows_vms(2)
        ref = r.rolling("p", vms)
        r.controller.enqueue(ref)
        await r.settle(lambda: vms[0] in r.sim.stats.reboots.running)
        moved = {**SCHEDULE, "schedule": "30 2 * * 6"}
        bump(r, ref, restart={"policy": "Rolling", "maintenanceWindow": moved, "maxConcurrent": 1})
        await r.settle(lambda: r.body(ref).get("status", {}).get("observedGeneration") == 2)
        await r.settle(lambda: not r.controller.queue.is_processing(ref))
        await asyncio.sleep(0.5)
        assert r.sim.stats.reboots.max_concurrent <= 1, (
            f"{r.sim.stats.reboots.max_concurrent} reboots ran at once with maxConcurrent 1: "
            f"{r.sim.stats.reboots.to_json()}"
        )


async def test_a_reboot_started_just_before_the_window_closes_still_halts_when_it_never_comes_back() -> None:
    """Scenario: the last reboot of the window is sent at 05:59:30 (window 02:00-06:00) and the VM never
    comes back (ZStack keeps it Rebooting). Twenty minutes later the window is closed.

    Promise broken: "a rebooted VM not Running again within 10 minutes stops the rollout: condition Rollout
    False, reason Halted, naming the VM, and a Warning Event RolloutHalted" ("A reboot started inside it may
    end after it"). Once the window has closed the rollout no longer looks at the reboots it sent: it says
    WindowClosed, and at the next opening the record is wiped, so the stuck VM is never reported."""
    last_minute = datetime.fromisoformat("2026-12-05T05:59:30+00:00")
    async with rig(reboot_seconds=3600.0, reconcile_seconds=1.0, now=last_minute) as r:
        (vm,) = r.windows_vms(1)
        ref = r.rolling("p", [vm])
        r.controller.enqueue(ref)
        await r.settle(lambda: vm in r.sim.stats.reboots.running)
        await r.settle(lambda: r.rollout(ref).get("reason") == "Rolling")
        r.clock.now = last_minute + timedelta(minutes=20)
        r.controller.enqueue(ref)
        await r.settle(lambda: r.body(ref)["status"].get("lastSyncTime") == "2026-12-05T06:19:30Z", within=20)
        await r.settle(lambda: not r.controller.queue.is_processing(ref))
        rollout = r.rollout(ref)
        assert (rollout["status"], rollout["reason"]) == ("False", "Halted"), rollout
        assert vm in rollout["message"], rollout


async def test_a_reboot_zstack_refused_before_running_is_retried_after_a_resume() -> None:
    """Scenario: the management node is busy when the first reboot is submitted: the job fails with
    SYS.1001 from ZStack's pipeline, before the VM is touched (it stays Running, never Rebooting). The
    rollout halts. The node recovers, a person resumes the rollout (reconcile-requested-at), the window is
    open for hours.

    Promises broken: the halt's message says the VM "did not come back from its reboot" although ZStack
    never rebooted it, and "Rolling reboots them inside the window": after the resume that VM is treated
    like one that failed to come back ("not rebooted again in the same window"), so it keeps waiting for
    a restart it never got while the rollout reports Complete."""
    async with rig() as r:
        vms = r.windows_vms(2)
        r.sim.faults.set_error_rate("RebootVmInstance", 1.0, "SYS.1001")
        ref = r.rolling("p", vms)
        r.controller.enqueue(ref)
        await r.settle(lambda: r.rollout(ref).get("reason") == "Halted")
        halted = r.rollout(ref)
        assert r.rebooted() == [], "ZStack rebooted nothing: the job failed before the VM was touched"

        r.sim.faults.clear()
        r.body(ref)["metadata"]["annotations"][RESUME] = "2026-12-05T02:31:00Z"
        r.clock.now = OPEN + timedelta(minutes=1)
        r.controller.enqueue(ref)
        await r.settle(lambda: r.rollout(ref).get("reason") == "Complete")
        await r.settle(lambda: not r.controller.queue.is_processing(ref))
        assert sorted(r.rebooted()) == vms, (
            f"rebooted {r.rebooted()} of {vms} after the resume; the halt said: {halted['message']}"
        )


async def test_a_policy_of_many_windows_vms_reboots_them() -> None:
    """Scenario: one UUID policy of 800 running Windows VMs (vmUuids allows 1000), all changed from host to
    guest, so all wait for a restart: the reason rolling restarts exist. Its status is over the 256 KiB
    budget, so bound_status sheds detail from Applied entries, the platform included.

    Promise broken: "What is rebooted: VMs this policy changed that wait for a restart, are Running, run
    Windows ...". The rollout reads the platform from status, finds none, counts all 800 as "not Windows",
    reboots nothing and reports Complete while every VM still shows pendingRestart."""
    async with rig(reboot_seconds=0.0, job_latency=0.0) as r:
        vms = sorted(r.sim.state.add_vm(NewVm(name=f"win-fleet-{n:03}")).uuid for n in range(800))
        ref = r.rolling("fleet", vms, max_concurrent=100)
        r.controller.enqueue(ref)
        await r.settle(lambda: bool(r.rollout(ref)), within=120)
        await r.settle(lambda: not r.controller.queue.is_processing(ref), within=120)
        pending = sum(1 for e in r.body(ref)["status"]["vms"] if e.get("pendingRestart"))
        rollout = r.rollout(ref)
        assert len(r.rebooted()) > 0, f"{pending} VMs wait for a restart, none rebooted; Rollout: {rollout}"


async def test_a_vm_removed_from_the_policy_is_not_rebooted_by_it() -> None:
    """Scenario: a Restore policy changed 3 running Windows VMs (all wait for a restart; the window has not
    opened yet). A person removes one VM from spec.vmUuids; ZStack refuses its restore write (SYS.1007), so
    status keeps it listed, waiting for its restore. Then the window opens.

    Promise broken: "What is rebooted: VMs this policy changed that wait for a restart, ... and are not owned
    by another policy", read with spec.vmUuids: a VM the policy no longer selects is no longer its to reboot.
    The rollout takes its candidates from every status entry, so it reboots the VM that left the policy,
    which makes the track the person is restoring away from take effect in the guest."""
    async with rig(now=OPEN - timedelta(hours=1)) as r:
        vms = r.windows_vms(3)
        ref = r.rolling("p", vms, deletionPolicy="Restore")
        r.controller.enqueue(ref)
        await r.settle(lambda: r.rollout(ref).get("reason") == "WindowClosed")
        await r.settle(lambda: not r.controller.queue.is_processing(ref))

        left = vms[0]
        r.sim.faults.set_error_rate("SetVmClockTrack", 1.0, "SYS.1007")
        r.clock.now = OPEN
        bump(r, ref, vmUuids=vms[1:])
        await r.settle(lambda: r.body(ref)["status"].get("observedGeneration") == 2)
        await r.settle(lambda: r.rollout(ref).get("reason") in ("Rolling", "Complete", "Halted"))
        await r.settle(lambda: not r.controller.queue.is_processing(ref))
        assert r.sim.state.track_of(left) == "guest", "its restore is still to come"
        assert left not in r.rebooted(), f"VM {left} left the policy and was rebooted by it: {r.rebooted()}"


async def test_a_window_open_across_a_half_hour_daylight_saving_jump_is_seen_open() -> None:
    """Scenario: timeZone Australia/Lord_Howe (its clocks move by 30 minutes), schedule "45 1 * * *",
    duration 4h. On 4 October 2026 the window opens at 01:45 (+10:30, 15:15 UTC); at 02:00 the clocks jump
    to 02:30 (+11). At 05:19 local (18:19 UTC) the window is open until 19:15 UTC.

    Promise broken: "timeZone: IANA name the schedule is read in" ("A local time skipped by a
    daylight-saving jump does not fire": 01:45 is not skipped). Stepping back one local hour as 60 UTC
    minutes jumps over the 30-minute-long local hour 02, misses the 01:45 fire time, and the rollout says
    WindowClosed (next opening the following night) and reboots nothing inside the open window."""
    inside = datetime.fromisoformat("2026-10-03T18:19:49+00:00")
    async with rig(now=inside) as r:
        (vm,) = r.windows_vms(1)
        ref = r.rolling("p", [vm])
        window = {"schedule": "45 1 * * *", "duration": "4h", "timeZone": "Australia/Lord_Howe"}
        r.body(ref)["spec"]["restart"]["maintenanceWindow"] = window
        r.controller.enqueue(ref)
        await r.settle(lambda: bool(r.rollout(ref)))
        await r.settle(lambda: not r.controller.queue.is_processing(ref))
        assert r.rebooted() == [vm], f"nothing rebooted in the open window; Rollout: {r.rollout(ref)}"


async def test_two_rolling_policies_sharing_vms_with_the_same_track_reboot_each_vm_once() -> None:
    """Scenario: two Rolling policies in one namespace list the same 2 running Windows VMs with the same
    track (no Conflict: they agree), an older one and a younger one, both applied at once (one shared
    observation; both see the VMs on host and write guest).

    Promise broken: "never reboots a VM another policy owns" (the older policy owns a shared VM, design.md
    §3.7) and a VM rebooted once for its track. Both policies consider the VMs theirs and waiting for a
    restart, so each VM is rebooted twice: once by each policy."""
    async with rig() as r:
        vms = r.windows_vms(2)
        elder, young = r.rolling("elder", vms), r.rolling("young", vms)
        r.body(elder)["metadata"]["creationTimestamp"] = "2020-01-01T00:00:00Z"
        r.index.sync(r.kube)
        r.controller.enqueue(elder)
        r.controller.enqueue(young)
        await r.settle(lambda: all(r.rollout(p).get("reason") == "Complete" for p in (elder, young)))
        await r.settle(lambda: not any(r.controller.queue.is_processing(p) for p in (elder, young)))
        assert sorted(r.rebooted()) == vms, f"reboots: {r.rebooted()} of {vms}"
