"""The controller's hook for rolling restarts: one rollout slice after a policy's reconcile.

It runs after the reconcile's status is saved (the writes it reports must not wait for reboots), under the
same deadline and stop gate, through its own lease of the connection, and saves the `Rollout` condition.
Between batches it stops when the policy is asked for again (a pause, a resume) and drops the VMs another
policy owns by then: a slice may run for minutes, and what it read at its start may no longer hold.
It tells the controller when to look again: at the window's next opening, soon while reboots are out, or
not at all (nothing to do, halted, blocked). A policy without `spec.restart.policy: Rolling` costs nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vmclock.connections import ConnectionManager
from vmclock.engine import PolicyState
from vmclock.engine.reconcile import CONNECTED, ReconcileIO, ReconcileResult
from vmclock.engine.report import Condition, EventSpec, find_condition, merge_conditions
from vmclock.engine.rollout import ROLLOUT, Rebooter, RolloutIO, RolloutResult, roll
from vmclock.engine.spec import RECONCILE_REQUESTED_ANNOTATION, PolicySpec, format_timestamp
from vmclock.kopfapp.records import RecordUnusable
from vmclock.kopfapp.rolloutrecord import ConfigMapRolloutStore
from vmclock.kubeapi import KubeApi
from vmclock.refs import Ref


@dataclass(frozen=True)
class RolloutContext:
    """What the controller lends one slice."""

    kube: KubeApi
    connections: ConnectionManager
    uid: str
    raw_connection: Mapping[str, Any] | None
    clock: Callable[[], datetime]
    stop: Callable[[], str | None]  # the reconcile's stop gate, and a newer request for the policy
    owned_elsewhere: Callable[[], frozenset[str]]  # its VMs another policy owns now


def blocked_by(state: PolicyState, spec: PolicySpec | None, result: ReconcileResult) -> str | None:
    """Why this reconcile may reboot nothing, or None."""
    if spec is None:
        return "the spec is invalid"
    if state.paused:
        return "the policy is paused (annotation vmclock.zstack.io/paused)"
    if not spec.enforce:
        return "spec.managementPolicy is Observe"
    reason = (result.status.get("connection") or {}).get("reason")
    if result.requeue_after_failure or reason != CONNECTED:
        return f"the connection is not Ready ({reason or 'unknown'})"
    return None


def selected_vms(spec: PolicySpec | None, result: ReconcileResult) -> list[Mapping[str, Any]]:
    """The entries of the VMs the policy selects now: one dropped from spec.vmUuids (listed while it
    awaits its restore) is no longer the policy's to reboot."""
    if spec is None:
        return []
    selected = result.selected if result.selected is not None else frozenset(spec.vm_uuids)
    return [entry for entry in result.vms if entry.get("uuid") in selected]


async def roll_slice(
    context: RolloutContext,
    state: PolicyState,
    spec: PolicySpec | None,
    result: ReconcileResult,
    io: ReconcileIO,
) -> RolloutResult:
    """One slice; the condition to show (None: drop a leftover one), Events and when to look again."""
    previous = (find_condition(result.status.get("conditions"), ROLLOUT) or {}).get("reason")
    ref = Ref(*state.ref)
    connection = spec.connection_name if spec is not None else ""
    leases = contextlib.AsyncExitStack()

    async def connect() -> Rebooter:  # only to send a batch of reboots: the connection is confirmed first
        await io.confirm_connection()
        lease = context.connections.lease(ref.namespace, connection, context.raw_connection)
        return await leases.enter_async_context(lease)

    store = ConfigMapRolloutStore(context.kube, ref, context.uid)
    rollout_io = RolloutIO(
        store,
        connect,
        context.clock,
        deadline=io.deadline,
        stop=context.stop,
        owned_elsewhere=context.owned_elsewhere,
    )
    try:
        return await roll(
            state.spec,
            selected_vms(spec, result),
            rollout_io,
            generation=state.generation,
            requested_at=state.annotations.get(RECONCILE_REQUESTED_ANNOTATION),
            blocked=blocked_by(state, spec, result),
            previous_reason=str(previous) if previous else None,
        )
    except RecordUnusable as problem:  # not ours (RecordConflict), or the namespace withdrew access
        condition = Condition(ROLLOUT, "False", problem.reason, f"no reboots: {problem}")
        events = (EventSpec("Warning", problem.reason, str(problem)),) * (previous != problem.reason)
        return RolloutResult(condition, events)
    finally:
        await leases.aclose()


def with_rollout(
    status: Mapping[str, Any], condition: Condition | None, *, generation: int, now: datetime
) -> dict[str, Any]:
    """`status` with the Rollout condition set, or removed when the policy no longer rolls."""
    conditions = status.get("conditions") or []
    if condition is None:
        kept = [c for c in conditions if not (isinstance(c, Mapping) and c.get("type") == ROLLOUT)]
        return {**status, "conditions": kept}
    merged = merge_conditions(conditions, [condition], generation=generation, now=format_timestamp(now))
    return {**status, "conditions": merged}
