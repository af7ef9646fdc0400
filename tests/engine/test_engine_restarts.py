"""Pending restarts, first-class (issue 17): counted over every VM of a selector policy (not only the 500
listed), kept in the record beside the previous tracks, cleared by ZStack's rule, reported by the Effective
condition and one RestartsCompleted Event. Real client against the in-process simulator; the record is the
engine's in-memory one (the operator's ConfigMaps are exercised in tests/operator_unit)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from vmclock.engine import PolicyState, reconcile
from vmclock.engine.pending import (
    PendingRestart,
    decode_restarts,
    encode_restarts,
    op_mark,
    waiting_for_restart,
)
from vmclock.engine.plan import PreviousVm
from vmclock.engine.reconcile import ReconcileIO, ReconcileResult
from vmclock.engine.records import MemoryRecord
from vmclock.engine.report import MAX_LISTED, effective_condition, pending_restarts
from vmclock.engine.rollout import MemoryRolloutStore, RolloutIO, roll
from vmclock.engine.spec import format_timestamp
from vmclock.simulator import Simulator
from vmclock.simulator.state import NewVm
from vmclock.zstack import ZStackClient
from vmclock.zstack.errors import MaySend
from vmclock.zstack.models import VmInventory

from .helpers import EARLIER_TEXT, NOW, NOW_TEXT, among, uuid
from .test_engine_selector import connector, selector_policy

FLEET = {"userTags": ["fleet"]}


def fleet(sim: Simulator, count: int, *, state: str = "Running") -> list[str]:
    """`count` Windows VMs on track host, tagged `fleet`."""
    made = (
        sim.state.add_vm(
            NewVm(f"fleet-{n}", platform="Windows", state=state, track="host", user_tags=("fleet",))
        )
        for n in range(count)
    )
    return sorted(vm.uuid for vm in made)


async def run(
    state: PolicyState, client: ZStackClient, record: MemoryRecord, now: datetime = NOW
) -> ReconcileResult:
    return await reconcile(state, connector(client), among(), now, io=ReconcileIO(record=record))


def condition(status: Mapping[str, Any], kind: str) -> tuple[str, str, str]:
    found = next(c for c in status["conditions"] if c["type"] == kind)
    return found["status"], found["reason"], found["message"]


def reasons(result: ReconcileResult) -> list[str]:
    return [e.reason for e in result.events]


def restart(sim: Simulator, uuids: list[str]) -> None:
    """A start ZStack saw: the VM runs again and its lastOpDate moved on (later than any write here)."""
    for vm in uuids:
        sim.state.vm(vm).change_state("Running", time.time() + 120)


async def test_every_vm_of_a_large_selector_policy_waits_until_restarted(
    sim: Simulator, client: ZStackClient
) -> None:
    vms = fleet(sim, 620)
    record = MemoryRecord()
    first = await run(selector_policy(selector=FLEET), client, record)
    status = first.status
    assert status["summary"]["pendingRestart"] == 620
    assert len(status["vms"]) == MAX_LISTED
    listed = {e["uuid"] for e in status["vms"]}
    unlisted = [u for u in vms if u not in listed]
    assert len(unlisted) == 620 - MAX_LISTED
    assert condition(status, "Effective")[:2] == ("False", "RestartPending")
    assert f"620 VMs wait for a restart, the oldest since {NOW_TEXT}" in condition(status, "Effective")[2]
    assert condition(status, "Ready")[:2] == ("True", "Available"), "Ready keeps its meaning"
    assert status["pendingRestartSince"] == NOW_TEXT
    assert set(await waiting_for_restart(record)) == set(vms)

    # A resync that finds nothing new: the same status, no record write, no Event.
    stores = (record.stores, record.pending_stores)
    second = await run(
        selector_policy(selector=FLEET, status=status), client, record, NOW + timedelta(hours=1)
    )
    assert second.status == status, "the unlisted VMs still wait, and nothing else moved"
    assert (record.stores, record.pending_stores) == stores
    assert second.events == ()

    # Some VMs stop (unlisted ones among them): the count falls, the record is written once.
    stopped = unlisted + vms[:80]
    for vm in stopped:
        sim.state.set_vm_state(vm, "Stopped")
    third = await run(selector_policy(selector=FLEET, status=second.status), client, record)
    assert third.status["summary"]["pendingRestart"] == 620 - len(stopped)
    assert record.pending_stores == stores[1] + 1
    assert set(record.pending) == set(vms) - set(stopped)
    assert "RestartsCompleted" not in reasons(third)

    # The others are restarted (lastOpDate moves on) and the stopped ones start again.
    restart(sim, vms)
    fourth = await run(selector_policy(selector=FLEET, status=third.status), client, record)
    assert fourth.status["summary"]["pendingRestart"] == 0
    assert condition(fourth.status, "Effective")[:2] == ("True", "TrackEffective")
    assert "pendingRestartSince" not in fourth.status
    assert reasons(fourth) == ["RestartsCompleted"]
    assert record.pending == {}

    fifth = await run(selector_policy(selector=FLEET, status=fourth.status), client, record)
    assert fifth.events == (), "the Event comes once, not at every resync"
    assert record.pending_stores == stores[1] + 2


async def test_a_vm_written_again_while_it_waits_keeps_waiting_since_the_first_write(
    sim: Simulator, client: ZStackClient
) -> None:
    [vm] = fleet(sim, 1)
    record = MemoryRecord()
    policy = PolicyState("ns", "p", 1, NOW, {"track": "guest", "vmUuids": [vm]})
    first = await run(policy, client, record)
    sim.state.set_track_behind(vm, "host")  # drift before the VM was restarted
    later = NOW + timedelta(hours=3)
    second = await run(PolicyState(**{**policy.__dict__, "status": first.status}), client, record, later)
    assert "DriftCorrected" in reasons(second)
    [entry] = second.status["vms"]
    assert (entry["pendingRestart"], entry["pendingRestartSince"]) == (True, NOW_TEXT)
    assert entry["lastAppliedTime"] == format_timestamp(later)


async def test_an_observe_policy_owes_no_restart(sim: Simulator, client: ZStackClient) -> None:
    fleet(sim, 3)
    result = await run(selector_policy(selector=FLEET, managementPolicy="Observe"), client, MemoryRecord())
    assert result.status["summary"]["drifted"] == 3
    assert result.status["summary"]["pendingRestart"] == 0
    assert condition(result.status, "Ready")[:2] == ("False", "Drifted")
    assert condition(result.status, "Effective")[:2] == ("True", "TrackEffective")


async def test_a_stopped_or_linux_vm_never_waits(sim: Simulator, client: ZStackClient) -> None:
    stopped = fleet(sim, 2, state="Stopped")
    linux = sim.state.add_vm(NewVm("linux", platform="Linux", track="host", user_tags=("fleet",))).uuid
    record = MemoryRecord()
    result = await run(selector_policy(selector=FLEET), client, record)
    assert all(sim.state.track_of(u) == "guest" for u in [*stopped, linux])
    assert result.status["summary"]["pendingRestart"] == 0
    assert record.pending_stores == 0


async def test_a_wait_only_an_older_status_knew_is_kept_and_recorded(
    sim: Simulator, client: ZStackClient
) -> None:
    [vm] = fleet(sim, 1)
    sim.state.set_track_behind(vm, "guest")
    inventory = sim.state.vm(vm).inventory()
    older = {  # written by an operator that kept pendingRestart only in status
        "observedGeneration": 1,
        "vms": [
            {
                "uuid": vm,
                "phase": "Applied",
                "observedTrack": "guest",
                "lastAppliedTime": EARLIER_TEXT,
                "pendingRestart": True,
                "inventory": {"state": "Running", "lastOpDate": inventory["lastOpDate"]},
            }
        ],
    }
    record = MemoryRecord()
    result = await run(selector_policy(selector=FLEET, status=older), client, record)
    assert result.status["summary"]["pendingRestart"] == 1
    assert result.status["pendingRestartSince"] == EARLIER_TEXT
    assert record.pending == {vm: PendingRestart(EARLIER_TEXT, op_mark(inventory["lastOpDate"]))}


async def test_a_crash_right_after_the_writes_forgets_no_wait(sim: Simulator, client: ZStackClient) -> None:
    vms = fleet(sim, 3)

    class Killed(Exception):
        """The operator dies at its first record write after a VM was written."""

    class Dying(MemoryRecord):
        async def store_pending_restarts(self, pending: Mapping[str, PendingRestart]) -> None:
            if sim.stats.writes:
                raise Killed
            await super().store_pending_restarts(pending)

    record = Dying()
    with contextlib.suppress(Killed):  # it dies only if it still had something to record then
        await run(selector_policy(selector=FLEET), client, record)
    assert all(sim.state.track_of(u) == "guest" for u in vms)
    # Its status was never saved: only the record can know that the written VMs wait.
    restarted = MemoryRecord(record.tracks, record.by)  # what the ConfigMaps hold when it comes back
    restarted.pending = dict(record.pending)
    again = await run(selector_policy(selector=FLEET), client, restarted, NOW + timedelta(hours=1))
    assert again.status["summary"]["pendingRestart"] == len(vms)
    assert again.status["pendingRestartSince"] == NOW_TEXT


async def test_a_waiting_vm_seen_on_another_track_waits_no_more(sim: Simulator, client: ZStackClient) -> None:
    [vm] = fleet(sim, 1)
    record = MemoryRecord()
    policy = PolicyState("ns", "p", 1, NOW, {"track": "guest", "vmUuids": [vm]})
    first = await run(policy, client, record)
    assert first.status["summary"]["pendingRestart"] == 1
    sim.state.set_track_behind(vm, "host")  # drift, and the policy now only observes
    observing = PolicyState(
        "ns", "p", 2, NOW, {**policy.spec, "managementPolicy": "Observe"}, status=first.status
    )
    second = await run(observing, client, record)
    assert second.status["summary"]["drifted"] == 1
    assert second.status["summary"]["pendingRestart"] == 0, "a restart would apply host, not guest"
    assert condition(second.status, "Effective")[:2] == ("True", "TrackEffective")
    assert record.pending == {}


def test_an_unreadable_vm_keeps_the_lastopdate_it_waits_on() -> None:
    waiting = {"uuid": uuid(1), "phase": "Pending", "pendingRestart": True, "pendingRestartSince": NOW_TEXT}
    before = {uuid(1): PreviousVm(uuid(1), pending_restart=True, op_mark="0badf00d")}
    assert pending_restarts([waiting], before) == {uuid(1): PendingRestart(NOW_TEXT, "0badf00d")}


def test_effective_names_the_count_and_the_oldest_wait() -> None:
    entries = [
        {"uuid": uuid(1), "pendingRestart": True, "pendingRestartSince": NOW_TEXT},
        {"uuid": uuid(2), "pendingRestart": True, "pendingRestartSince": EARLIER_TEXT},
        {"uuid": uuid(3), "pendingRestart": False},
    ]
    effective = effective_condition(entries)
    assert (effective.status, effective.reason) == ("False", "RestartPending")
    assert effective.message.startswith(f"2 VMs wait for a restart, the oldest since {EARLIER_TEXT}")
    assert effective_condition(entries[1:2]).message.startswith("1 VM waits for a restart")
    assert effective_condition(entries[2:]).status == "True"


def test_the_pending_text_round_trips_skips_garbage_and_stays_small() -> None:
    pending = {
        f"{n:032x}": PendingRestart(f"2026-12-0{1 + n % 7}T10:00:00Z", op_mark(f"Dec {n % 28 + 1}, 2026"))
        for n in range(10_000)
    }
    text = encode_restarts(pending)
    assert len(text.encode()) < 480 * 1024, "10,000 waiting VMs stay well inside a ConfigMap's 1 MiB"
    garbage = "garbage\n@x y\n" + f"{1:032x} 99 0badf00d\n" + f"{2:032x} 0 short\n"
    assert decode_restarts(text + garbage) == pending


async def test_a_rolling_selector_policy_reboots_every_waiting_vm_not_only_the_listed_ones(
    sim: Simulator, client: ZStackClient
) -> None:
    """The rollout takes its candidates from the reconcile's view of every selected VM (`vms`), not from
    status, which lists at most 500: a 520-VM selector policy reboots all 520."""
    vms = fleet(sim, 520)
    result = await run(selector_policy(selector=FLEET), client, MemoryRecord())
    assert len(result.status["vms"]) == MAX_LISTED < len(vms)
    rebooted: list[str] = []

    class Rebooter:
        async def reboot_vm(self, uuid: str, *, may_send: MaySend | None = None) -> VmInventory:
            rebooted.append(uuid)
            return VmInventory(uuid=uuid, state="Running", platform="Windows")

    async def connect() -> Rebooter:
        return Rebooter()

    window = {"schedule": "0 2 * * 6", "duration": "4h", "timeZone": "UTC"}
    spec = {
        "track": "guest",
        "restart": {"policy": "Rolling", "maintenanceWindow": window, "maxConcurrent": 100},
    }
    saturday_3am = datetime.fromisoformat("2026-12-05T03:00:00+00:00")
    io = RolloutIO(MemoryRolloutStore(), connect, lambda: saturday_3am)
    await roll(spec, result.vms, io, generation=1, requested_at=None, blocked=None, previous_reason=None)
    assert sorted(rebooted) == vms
