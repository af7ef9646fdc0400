"""Rolling restarts, the effects: one slice of a rollout inside one reconcile (see restarts.py for the rules).

Each batch is recorded before it is sent (a kill -9 between the two leaves a VM recorded and not rebooted:
it is then only waited for, never rebooted twice in one window), then sent with the reconcile's deadline and
stop gate, and awaited: ZStack's reboot job ends when the VM is Running again or failed to come back. A
failure halts the rollout. A reboot ZStack refused before touching the VM (its API pipeline or the VM's state
check answered with an error) halts it too, but is withdrawn from the record: it was not rebooted, so after
a resume it is tried again. The connection is leased before the intent is written: a lease that fails
leaves no intent for a reboot never sent. What the deadline cuts stays recorded as sent and is waited for
next time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from vmclock.engine.reconcile import ConnectionUnavailable
from vmclock.engine.report import Condition, EventSpec, listing
from vmclock.engine.restarts import (
    WAIT_POLL_SECONDS,
    Candidate,
    Decision,
    Outcome,
    RolloutRecord,
    Step,
    decide,
    halted,
    owned_elsewhere,
    restart_candidates,
)
from vmclock.engine.restartspec import parse_restart
from vmclock.engine.spec import InvalidSpec, format_timestamp
from vmclock.zstack.errors import MaySend, NotSent, ZStackError
from vmclock.zstack.models import VmInventory
from vmclock.zstack.reboot import refused

ROLLOUT = "Rollout"
INVALID = "InvalidSpec"
OBSERVE_SOON = 1.0  # after reboots: look again at once, so status shows the restarts done
RESUME_HINT = "set a new spec or annotate vmclock.zstack.io/reconcile-requested-at to resume"


class Rebooter(Protocol):
    async def reboot_vm(self, uuid: str, *, may_send: MaySend | None = None) -> VmInventory: ...


class RolloutStore(Protocol):
    async def load(self) -> RolloutRecord: ...

    async def store(self, record: RolloutRecord) -> None:
        """Persist now; raising stops the rollout before anything more is sent."""
        ...


class MemoryRolloutStore:
    """A record held in memory (tests, standalone use); `stores` counts writes."""

    def __init__(self, record: RolloutRecord | None = None) -> None:
        self.record = record or RolloutRecord()
        self.stores = 0

    async def load(self) -> RolloutRecord:
        return self.record

    async def store(self, record: RolloutRecord) -> None:
        self.record = record
        self.stores += 1


def _never_stop() -> str | None:
    return None


def _nobody_else() -> frozenset[str]:
    return frozenset()


@dataclass(frozen=True)
class RolloutIO:
    store: RolloutStore
    connect: Callable[[], Awaitable[Rebooter]]
    clock: Callable[[], datetime]
    deadline: float | None = None  # event-loop time the slice must end by (the reconcile's)
    stop: MaySend = _never_stop
    owned_elsewhere: Callable[[], frozenset[str]] = _nobody_else  # asked before each batch


@dataclass(frozen=True)
class RolloutResult:
    """`condition` None: the policy does not roll (Never), so a Rollout condition left over goes."""

    condition: Condition | None
    events: tuple[EventSpec, ...] = ()
    requeue_after: float | None = None


async def roll(
    spec: Mapping[str, Any],
    vms: Iterable[Mapping[str, Any]],
    io: RolloutIO,
    *,
    generation: int,
    requested_at: str | None,
    blocked: str | None,
    previous_reason: str | None,
) -> RolloutResult:
    """One slice of the rollout of a policy whose reconcile just saw `vms` (every selected VM's entry)."""
    try:
        restart = parse_restart(spec)
    except InvalidSpec as problem:
        condition = Condition(ROLLOUT, "False", INVALID, f"no reboots: {problem}")
        warn = previous_reason != INVALID
        return RolloutResult(condition, (EventSpec("Warning", "RolloutInvalid", condition.message),) * warn)
    if not restart.rolling:
        return RolloutResult(None)
    candidates = restart_candidates(vms)
    record = await io.store.load()
    events: list[EventSpec] = []
    rebooted_now = False
    while True:
        candidates = owned_elsewhere(candidates, io.owned_elsewhere())
        decision = decide(
            restart,
            record,
            candidates,
            io.clock(),
            generation=generation,
            requested_at=requested_at,
            blocked=blocked,
        )
        if decision.record != record:
            await io.store.store(decision.record)
            record = decision.record
        if not decision.reboot:
            break
        try:
            record, candidates, failure = await _batch(decision, record, candidates, io)
        except ConnectionUnavailable as problem:
            return _lost_connection(decision, problem, events)
        rebooted_now = True
        events.append(
            EventSpec(
                "Normal",
                "RebootBatch",
                f"rebooted {len(decision.reboot)} VMs so their clock track takes effect: "
                f"{listing(list(decision.reboot))}",
            )
        )
        if failure is not None:
            decision = halted(record, failure, generation, requested_at)
            await io.store.store(decision.record)
            break
        if io.stop() is not None or _past(io.deadline):
            decision = replace(decision, reboot=())
            break
    return _result(decision, events, previous_reason, rebooted_now, io.clock())


async def _batch(
    decision: Decision, record: RolloutRecord, candidates: Mapping[str, Candidate], io: RolloutIO
) -> tuple[RolloutRecord, dict[str, Candidate], str | None]:
    """Record, send and await one batch; the record and candidates as they are after it, and why the
    rollout must halt (a reboot ZStack failed), if it must."""
    client = await io.connect()  # first: a connection that cannot be leased must leave no intent behind
    record = record.with_sent(decision.reboot, Outcome.SENT, at=io.clock().timestamp())
    await io.store.store(record)  # intent before action
    tasks = {
        uuid: asyncio.ensure_future(client.reboot_vm(uuid, may_send=io.stop)) for uuid in decision.reboot
    }
    _, late = await asyncio.wait(tasks.values(), timeout=_remaining(io.deadline))
    for task in late:
        task.cancel()  # the job goes on in ZStack: recorded as sent, waited for next time
    await asyncio.gather(*late, return_exceptions=True)
    seen = dict(candidates)
    failure = None
    for uuid, task in tasks.items():
        if task in late:
            continue
        error = task.exception()
        if isinstance(error, NotSent):
            record = record.without([uuid])  # withdrawn before it left: nothing reached ZStack
        elif isinstance(error, ZStackError) and refused(error):
            record = record.without([uuid])  # the VM was not touched: after a resume it may go again
            failure = (
                failure
                or f"ZStack refused to reboot VM {uuid} ({error}); it was not rebooted; the rollout stopped"
            )
        elif error is not None:
            record = record.with_sent([uuid], Outcome.FAILED)
            why = str(error) if isinstance(error, ZStackError) else type(error).__name__
            failure = failure or f"VM {uuid} did not come back from its reboot ({why}); the rollout stopped"
        else:
            inventory = task.result()
            came_back = inventory.state == "Running"
            record = record.with_sent([uuid], Outcome.BACK if came_back else Outcome.SENT)
            old = seen.get(uuid)
            if old is not None:
                seen[uuid] = replace(old, pending_restart=not came_back, state=inventory.state)
    await io.store.store(record)
    return record, seen, failure


def _lost_connection(
    decision: Decision, problem: ConnectionUnavailable, events: list[EventSpec]
) -> RolloutResult:
    """The connection became unusable between two batches: this batch was neither recorded nor sent. The
    next reconcile, soon, says how the connection is and backs off while it stays broken."""
    waiting = decision.left + len(decision.reboot)
    message = (
        f"no reboots while the connection is not Ready ({problem.reason}: {problem}); "
        f"{waiting} VMs wait for a restart"
    )
    events.append(EventSpec("Warning", "RolloutBlocked", message))
    condition = Condition(ROLLOUT, "False", Step.BLOCKED.value, message)
    return RolloutResult(condition, tuple(events), WAIT_POLL_SECONDS)


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - asyncio.get_running_loop().time())


def _past(deadline: float | None) -> bool:
    return deadline is not None and asyncio.get_running_loop().time() >= deadline


def _result(
    decision: Decision, events: list[EventSpec], previous: str | None, rebooted_now: bool, now: datetime
) -> RolloutResult:
    step = decision.step
    soon = OBSERVE_SOON if rebooted_now else None
    if step is Step.HALTED:
        message = f"{decision.message}; {RESUME_HINT}"
        if previous != Step.HALTED.value:
            events.append(EventSpec("Warning", "RolloutHalted", message))
        return RolloutResult(Condition(ROLLOUT, "False", step.value, message), tuple(events), soon)
    if step is Step.BLOCKED:
        message = f"no reboots while {decision.message}; {decision.left} VMs wait for a restart"
        return RolloutResult(Condition(ROLLOUT, "False", step.value, message), tuple(events), soon)
    if step is Step.CLOSED:
        opening = decision.next_opening
        when = format_timestamp(opening) if opening is not None else "never (the schedule has no such date)"
        message = f"{decision.left} VMs wait for a restart; the maintenance window opens next at {when}"
        after = (opening - now).total_seconds() if opening is not None else None
        if decision.waiting:
            message += f"; {len(decision.waiting)} VMs rebooting"
            after = WAIT_POLL_SECONDS  # a reboot sent before the window closed is still judged
        return RolloutResult(Condition(ROLLOUT, "True", step.value, message), tuple(events), soon or after)
    if step is Step.ROLLING:
        message = (
            f"window opened at {decision.record.window}: {decision.rebooted} VMs restarted, "
            f"{len(decision.waiting)} rebooting, {decision.left} to go"
        )
        return RolloutResult(
            Condition(ROLLOUT, "True", step.value, message), tuple(events), soon or WAIT_POLL_SECONDS
        )
    message = (
        f"no VM of this policy waits for a restart it may get ({decision.rebooted} restarted in this window"
    )
    message += f", {decision.skipped} left: not Running, not Windows or owned by another policy)"
    if previous == Step.ROLLING.value or rebooted_now:
        events.append(EventSpec("Normal", "RolloutFinished", message))
    return RolloutResult(Condition(ROLLOUT, "True", Step.COMPLETE.value, message), tuple(events), soon)
