"""Rolling restarts: which VMs are rebooted, how many at once, when, and what survives a crash.

The rollout's effects run against a fake rebooter (the ZStack side) and an in-memory record, with a fake
clock; nothing of the rollout itself is replaced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from vmclock.engine import PolicyState
from vmclock.engine.reconcile import ConnectionUnavailable, ReconcileResult
from vmclock.engine.restarts import COME_BACK_SECONDS, WAIT_POLL_SECONDS, Outcome, RolloutRecord, Sent
from vmclock.engine.rollout import MemoryRolloutStore, RolloutIO, RolloutResult, roll
from vmclock.engine.spec import parse_policy_spec
from vmclock.kopfapp.rolling import blocked_by, selected_vms
from vmclock.zstack.errors import ErrorCode, MaySend, NotSent, ZStackError
from vmclock.zstack.models import VmInventory
from vmclock.zstack.reboot import refused

from .helpers import uuid

OPEN = datetime.fromisoformat("2026-12-05T03:00:00+00:00")  # a Saturday, inside "0 2 * * 6" for 4h
CLOSED = datetime.fromisoformat("2026-12-07T10:00:00+00:00")  # a Monday
WINDOW_START = "2026-12-05T02:00:00Z"


def spec(max_concurrent: int = 1, **restart: Any) -> dict[str, Any]:
    return {
        "track": "guest",
        "vmUuids": [uuid(n) for n in range(1, 9)],
        "restart": {
            "policy": "Rolling",
            "maintenanceWindow": {"schedule": "0 2 * * 6", "duration": "4h"},
            "maxConcurrent": max_concurrent,
            **restart,
        },
    }


def vm(
    n: int, *, pending: bool = True, state: str = "Running", platform: str = "Windows", phase: str = "Applied"
) -> dict[str, Any]:
    return {
        "uuid": uuid(n),
        "phase": phase,
        "pendingRestart": pending,
        "inventory": {"uuid": uuid(n), "state": state, "platform": platform},
    }


def status(*vms: dict[str, Any]) -> dict[str, Any]:
    return {"vms": list(vms)}


@dataclass
class FakeZStack:
    """Reboots take `seconds`; `fail` answers like ZStack for a VM that does not come back."""

    seconds: float = 0.01
    fail: set[str] = field(default_factory=set)
    refuse: ZStackError | None = None  # answered to every submit: nothing is rebooted
    rebooted: list[str] = field(default_factory=list)
    now: int = 0
    peak: int = 0

    async def reboot_vm(self, uuid: str, *, may_send: MaySend | None = None) -> VmInventory:
        why = may_send() if may_send is not None else None
        if why is not None:
            raise NotSent(why)
        if self.refuse is not None:
            raise self.refuse
        self.rebooted.append(uuid)
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await asyncio.sleep(self.seconds)
        finally:
            self.now -= 1
        if uuid in self.fail:
            raise ZStackError.client("VM.1003", "failed to start vm on the hypervisor; it is Stopped")
        return VmInventory(uuid=uuid, state="Running", platform="Windows")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def run(
    policy: dict[str, Any],
    current: dict[str, Any],
    zstack: FakeZStack,
    store: MemoryRolloutStore,
    clock: Callable[[], datetime],
    *,
    generation: int = 1,
    requested_at: str | None = None,
    blocked: str | None = None,
    previous: str | None = None,
    stop: MaySend | None = None,
    owned_elsewhere: frozenset[str] = frozenset(),
) -> RolloutResult:
    async def connect() -> FakeZStack:
        return zstack

    io = RolloutIO(
        store, connect, clock, stop=stop or (lambda: None), owned_elsewhere=lambda: owned_elsewhere
    )
    return await roll(
        policy,
        current["vms"],
        io,
        generation=generation,
        requested_at=requested_at,
        blocked=blocked,
        previous_reason=previous,
    )


async def test_every_waiting_vm_is_rebooted_at_most_max_concurrent_at_a_time() -> None:
    zstack, store = FakeZStack(seconds=0.02), MemoryRolloutStore()
    result = await run(
        spec(max_concurrent=2), status(*(vm(n) for n in range(1, 6))), zstack, store, Clock(OPEN)
    )
    assert sorted(zstack.rebooted) == [uuid(n) for n in range(1, 6)]
    assert zstack.peak == 2
    assert [e.reason for e in result.events] == ["RebootBatch"] * 3 + ["RolloutFinished"]
    assert result.condition is not None
    assert (result.condition.status, result.condition.reason) == (
        "True",
        "Complete",
    )
    assert result.requeue_after == 1.0  # look again soon, so status shows the restarts done
    assert store.record.window == WINDOW_START
    assert {s.outcome for s in store.record.sent.values()} == {Outcome.BACK}


async def test_only_running_windows_vms_this_policy_owns_and_that_wait_are_rebooted() -> None:
    zstack, store = FakeZStack(), MemoryRolloutStore()
    current = status(
        vm(1),
        vm(2, pending=False),
        vm(3, state="Stopped"),
        vm(4, platform="Linux"),
        vm(5, phase="Conflict"),
        vm(6, platform="WindowsVirtio"),
        vm(7, state="Paused"),
    )
    result = await run(spec(max_concurrent=10), current, zstack, store, Clock(OPEN))
    assert sorted(zstack.rebooted) == [uuid(1), uuid(6)]
    assert result.condition is not None
    assert "4 left: not Running, not Windows" in result.condition.message


@pytest.mark.parametrize(
    "why",
    [
        "the policy is paused (annotation vmclock.zstack.io/paused)",
        "spec.managementPolicy is Observe",
        "the connection is not Ready (Unreachable)",
    ],
)
async def test_a_blocked_policy_reboots_nothing(why: str) -> None:
    zstack, store = FakeZStack(), MemoryRolloutStore()
    result = await run(spec(), status(vm(1), vm(2)), zstack, store, Clock(OPEN), blocked=why)
    assert zstack.rebooted == []
    assert result.condition is not None
    assert (result.condition.status, result.condition.reason) == ("False", "Blocked")
    assert why in result.condition.message
    assert "2 VMs wait for a restart" in result.condition.message


def _result(connection: str = "Connected", *, failed: bool = False) -> ReconcileResult:
    return ReconcileResult({"connection": {"reason": connection}}, requeue_after_failure=failed)


@pytest.mark.parametrize(
    ("paused", "management", "result", "says"),
    [
        (True, "Enforce", _result(), "paused"),
        (False, "Observe", _result(), "Observe"),
        (False, "Enforce", _result("Unreachable", failed=True), "not Ready (Unreachable)"),
        (False, "Enforce", _result(), None),
    ],
)
def test_blocked_by_paused_observe_or_a_connection_not_ready(
    paused: bool, management: str, result: ReconcileResult, says: str | None
) -> None:
    body = {"metadata": {"annotations": {"vmclock.zstack.io/paused": "true"} if paused else {}}}
    state = PolicyState.from_body({**body, "spec": spec()})
    why = blocked_by(state, parse_policy_spec({**spec(), "managementPolicy": management}), result)
    assert (why is None) if says is None else (why is not None and says in why)


async def test_a_closed_window_reboots_nothing_and_looks_again_when_it_opens() -> None:
    zstack, store = FakeZStack(), MemoryRolloutStore()
    result = await run(spec(), status(vm(1)), zstack, store, Clock(CLOSED))
    assert zstack.rebooted == []
    assert result.condition is not None
    assert result.condition.reason == "WindowClosed"
    assert "opens next at 2026-12-12T02:00:00Z" in result.condition.message
    assert (
        result.requeue_after == (datetime.fromisoformat("2026-12-12T02:00:00+00:00") - CLOSED).total_seconds()
    )


async def test_never_reboots_nothing_and_touches_no_record() -> None:
    zstack, store = FakeZStack(), MemoryRolloutStore()
    never = {**spec(), "restart": {"policy": "Never"}}
    for policy in (never, {k: v for k, v in spec().items() if k != "restart"}):
        result = await run(policy, status(vm(1)), zstack, store, Clock(OPEN))
        assert (result.condition, result.events, result.requeue_after) == (None, (), None)
    assert (zstack.rebooted, store.stores) == ([], 0)


async def test_a_bad_window_is_a_condition_and_one_warning() -> None:
    bad = spec(maintenanceWindow={"schedule": "0 2 * * 6", "duration": "4h", "timeZone": "Nowhere/Land"})
    zstack, store = FakeZStack(), MemoryRolloutStore()
    first = await run(bad, status(vm(1)), zstack, store, Clock(OPEN))
    assert first.condition is not None
    assert (first.condition.status, first.condition.reason) == (
        "False",
        "InvalidSpec",
    )
    assert "spec.restart.maintenanceWindow.timeZone" in first.condition.message
    assert [e.type for e in first.events] == ["Warning"]
    again = await run(bad, status(vm(1)), zstack, store, Clock(OPEN), previous="InvalidSpec")
    assert again.events == ()
    assert zstack.rebooted == []


async def test_the_intent_is_stored_before_the_reboot_is_sent() -> None:
    store = MemoryRolloutStore()
    seen: list[RolloutRecord] = []

    class Recording(FakeZStack):
        async def reboot_vm(self, uuid: str, *, may_send: MaySend | None = None) -> VmInventory:
            seen.append(store.record)
            return await super().reboot_vm(uuid, may_send=may_send)

    await run(spec(), status(vm(1)), Recording(), store, Clock(OPEN))
    (before,) = seen
    assert before.sent[uuid(1)].outcome is Outcome.SENT


async def test_after_a_crash_a_recorded_vm_is_waited_for_never_rebooted_again() -> None:
    """kill -9 after the intent was stored: the VM may or may not have been rebooted; it is not sent again
    in this window. Seen back, it counts as restarted; never seen back, the rollout halts after the bound."""
    clock = Clock(OPEN)
    recorded = RolloutRecord(WINDOW_START, {uuid(1): Sent(OPEN.timestamp())})
    zstack = FakeZStack()

    waiting = await run(
        spec(max_concurrent=2), status(vm(1), vm(2)), zstack, MemoryRolloutStore(recorded), clock
    )
    assert zstack.rebooted == [uuid(2)]  # the other slot is the recorded VM's, which is only waited for
    assert waiting.condition is not None
    assert waiting.condition.reason == "Rolling"
    assert waiting.requeue_after == 1.0
    zstack.rebooted.clear()
    full = await run(spec(), status(vm(1), vm(2)), zstack, MemoryRolloutStore(recorded), clock)
    assert zstack.rebooted == []  # the one slot is taken by the VM it waits for
    assert full.requeue_after == 5.0

    back = MemoryRolloutStore(recorded)
    await run(spec(), status(vm(1, pending=False), vm(2)), zstack, back, clock)
    assert zstack.rebooted == [uuid(2)]
    assert back.record.sent[uuid(1)].outcome is Outcome.BACK

    never_back = MemoryRolloutStore(recorded)
    clock.now = OPEN + timedelta(seconds=COME_BACK_SECONDS + 1)
    halted = await run(spec(), status(vm(1), vm(3)), zstack, never_back, clock)
    assert zstack.rebooted == [uuid(2)]
    assert halted.condition is not None
    assert (halted.condition.status, halted.condition.reason) == (
        "False",
        "Halted",
    )
    assert uuid(1) in halted.condition.message
    assert "10 minutes" in halted.condition.message


async def test_a_vm_that_does_not_come_back_halts_until_a_new_generation_or_request() -> None:
    zstack, store, clock = FakeZStack(fail={uuid(1)}), MemoryRolloutStore(), Clock(OPEN)
    current = status(vm(1), vm(2), vm(3))
    first = await run(spec(), current, zstack, store, clock, requested_at="a")
    assert zstack.rebooted == [uuid(1)]
    assert first.condition is not None
    assert first.condition.reason == "Halted"
    assert "VM.1003" in first.condition.message
    assert "reconcile-requested-at" in first.condition.message
    assert [(e.type, e.reason) for e in first.events] == [
        ("Normal", "RebootBatch"),
        ("Warning", "RolloutHalted"),
    ]

    again = await run(spec(), current, zstack, store, clock, requested_at="a", previous="Halted")
    assert zstack.rebooted == [uuid(1)]  # still halted: nothing more
    assert again.events == ()

    resumed = await run(spec(), current, zstack, store, clock, requested_at="b", previous="Halted")
    assert zstack.rebooted == [
        uuid(1),
        uuid(2),
        uuid(3),
    ]  # the failed VM is not rebooted again in this window
    assert resumed.condition is not None
    assert resumed.condition.reason == "Complete"


async def test_a_new_window_may_reboot_a_vm_again() -> None:
    zstack, store = FakeZStack(), MemoryRolloutStore()
    await run(spec(), status(vm(1)), zstack, store, Clock(OPEN))
    await run(spec(), status(vm(1)), zstack, store, Clock(OPEN + timedelta(hours=1)))
    assert zstack.rebooted == [uuid(1)]
    await run(spec(), status(vm(1)), zstack, store, Clock(OPEN + timedelta(days=7)))
    assert zstack.rebooted == [uuid(1), uuid(1)]


async def test_a_reboot_withdrawn_before_it_left_is_not_recorded_as_sent() -> None:
    zstack, store = FakeZStack(), MemoryRolloutStore()
    result = await run(spec(), status(vm(1)), zstack, store, Clock(OPEN), stop=lambda: "not sent: superseded")
    assert zstack.rebooted == []
    assert uuid(1) not in store.record.sent
    assert result.condition is not None
    assert result.condition.reason == "Rolling"


def test_the_record_round_trips_and_a_garbled_one_is_empty() -> None:
    record = RolloutRecord(WINDOW_START, {uuid(1): Sent(1.5, Outcome.BACK)})
    assert RolloutRecord.decode(record.encode()) == record
    assert RolloutRecord.decode("{not json") == RolloutRecord()


def answer(code: str, cause: str | None = None) -> ZStackError:
    """An error ZStack answered (HTTP 503 with an ErrorCode), optionally wrapping a cause."""
    error = ErrorCode(code, "failed", cause=ErrorCode(cause, "cause") if cause else None)
    return ZStackError(error, http_status=503, operation="RebootVmInstance")


@pytest.mark.parametrize(
    ("error", "was_refused"),
    [
        (answer("SYS.1001"), True),  # the API pipeline: the VM's chain never got the message
        (answer("SYS.1003"), True),
        (answer("VM.1003", "VM.1010"), True),  # the VM's state check refused it
        (answer("VM.1003", "HOST.1005"), False),  # the reboot flow ran and the VM did not start again
        (ZStackError.client("CLIENT.TIMEOUT", "no answer"), False),  # it may have run
    ],
)
def test_a_refusal_is_an_answer_that_the_vm_was_not_touched(error: ZStackError, was_refused: bool) -> None:
    assert refused(error) is was_refused


async def test_a_refused_reboot_halts_truthfully_and_is_tried_again_after_a_resume() -> None:
    zstack, store, clock = FakeZStack(refuse=answer("SYS.1001")), MemoryRolloutStore(), Clock(OPEN)
    first = await run(spec(), status(vm(1)), zstack, store, clock, requested_at="a")
    assert first.condition is not None
    assert first.condition.reason == "Halted"
    assert f"ZStack refused to reboot VM {uuid(1)}" in first.condition.message
    assert "not rebooted" in first.condition.message
    assert uuid(1) not in store.record.sent

    zstack.refuse = None
    resumed = await run(spec(), status(vm(1)), zstack, store, clock, requested_at="b", previous="Halted")
    assert zstack.rebooted == [uuid(1)]
    assert resumed.condition is not None
    assert resumed.condition.reason == "Complete"


async def test_a_reboot_out_when_the_window_closes_is_still_watched_and_halts_when_late() -> None:
    sent_at = (CLOSED - timedelta(minutes=2)).timestamp()
    record = RolloutRecord(WINDOW_START, {uuid(1): Sent(sent_at)})
    zstack, store = FakeZStack(), MemoryRolloutStore(record)
    out = status(vm(1, state="Rebooting"))
    watching = await run(spec(), out, zstack, store, Clock(CLOSED))
    assert watching.condition is not None
    assert watching.condition.reason == "WindowClosed"
    assert "1 VMs rebooting" in watching.condition.message
    assert watching.requeue_after == WAIT_POLL_SECONDS

    late = await run(spec(), out, zstack, store, Clock(CLOSED + timedelta(seconds=COME_BACK_SECONDS)))
    assert late.condition is not None
    assert late.condition.reason == "Halted"
    assert uuid(1) in late.condition.message
    assert zstack.rebooted == []


async def test_a_reboot_out_across_a_new_window_start_counts_against_max_concurrent() -> None:
    record = RolloutRecord("2026-12-05T01:00:00Z", {uuid(1): Sent(OPEN.timestamp() - 60)})
    zstack, store = FakeZStack(), MemoryRolloutStore(record)
    result = await run(spec(), status(vm(1, state="Rebooting"), vm(2)), zstack, store, Clock(OPEN))
    assert zstack.rebooted == []
    assert store.record.window == WINDOW_START
    assert store.record.sent[uuid(1)].outcome is Outcome.SENT
    assert result.condition is not None
    assert "1 rebooting, 1 to go" in result.condition.message


async def test_a_vm_another_policy_owns_now_is_not_rebooted() -> None:
    zstack, store = FakeZStack(), MemoryRolloutStore()
    current = status(vm(1), vm(2))
    await run(
        spec(max_concurrent=2), current, zstack, store, Clock(OPEN), owned_elsewhere=frozenset({uuid(2)})
    )
    assert zstack.rebooted == [uuid(1)]


async def test_a_connection_lost_between_batches_leaves_no_intent_and_blocks_with_a_warning() -> None:
    store = MemoryRolloutStore()

    async def connect() -> FakeZStack:
        raise ConnectionUnavailable(
            "SecretNotFound", "ZStackConnection ns/zstack is not ready: Secret is gone"
        )

    io = RolloutIO(store, connect, Clock(OPEN))
    result = await roll(
        spec(), status(vm(1))["vms"], io, generation=1, requested_at=None, blocked=None, previous_reason=None
    )
    assert uuid(1) not in store.record.sent
    assert result.condition is not None
    assert (result.condition.status, result.condition.reason) == ("False", "Blocked")
    assert "SecretNotFound" in result.condition.message
    assert [(e.type, e.reason) for e in result.events] == [("Warning", "RolloutBlocked")]
    assert result.requeue_after == WAIT_POLL_SECONDS


def test_only_the_vms_a_policy_selects_now_are_its_candidates() -> None:
    seen = (vm(1), vm(2), vm(3))  # 3 was dropped from the policy and awaits its restore
    by_uuid = parse_policy_spec({**spec(), "vmUuids": [uuid(1), uuid(2)]})
    assert [e["uuid"] for e in selected_vms(by_uuid, ReconcileResult({}, vms=seen))] == [uuid(1), uuid(2)]
    by_selector = parse_policy_spec({"track": "guest", "selector": {"platforms": ["Windows"]}})
    chosen = ReconcileResult({}, selected=frozenset({uuid(2), uuid(3)}), vms=seen)
    assert [e["uuid"] for e in selected_vms(by_selector, chosen)] == [uuid(2), uuid(3)]
