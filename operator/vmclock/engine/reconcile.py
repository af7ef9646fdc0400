"""The reconcile engine's entry points: observe -> plan -> apply -> status, with no Kubernetes I/O.

The kopf layer hands in a policy as read from the API (`PolicyState`), a way to get a ZStack client for the
policy's connection, and the claims of all other policies; it gets back the complete new status, the Events
to post and the write outcomes (for metrics). Whether to PATCH is the caller's decision: it compares the new
status with what is stored, so an unchanged reconcile writes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vmclock.engine.apply import WriteOutcome, apply_writes
from vmclock.engine.conditions import READY, SYNCED, Condition, merge_conditions
from vmclock.engine.events import PAUSED_REASON, EventSpec, transition_events, write_events
from vmclock.engine.observation import observe
from vmclock.engine.ownership import PolicyClaim, conflicting_owners, selected_elsewhere
from vmclock.engine.phases import Phase
from vmclock.engine.planning import Plan, dropped_targets, plan_policy, restore_targets
from vmclock.engine.ports import ClockTrackClient
from vmclock.engine.previous import PreviousVm, condition_reason, previous_generation, previous_vms
from vmclock.engine.restore import RestoreStep, plan_restores
from vmclock.engine.sizing import bound_status
from vmclock.engine.spec import (
    RECONCILE_REQUESTED_ANNOTATION,
    InvalidSpec,
    PolicySpec,
    format_timestamp,
    is_paused,
    parse_policy_spec,
    parse_timestamp,
)
from vmclock.engine.verdict import ready_condition, summarize, synced_condition
from vmclock.engine.vmstatus import restore_entry, selected_vm_entry

CONNECTION_NOT_READY = "ConnectionNotReady"
RECONCILING = "Reconciling"
MAX_HANDLED_RECONCILE_AT = 1024  # the CRD's maxLength for status.lastHandledReconcileAt


class ConnectionUnavailable(Exception):
    """The policy's ZStackConnection cannot be used; `reason` is the connection's own Ready reason."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


Connect = Callable[[str], Awaitable[ClockTrackClient]]


@dataclass(frozen=True)
class PolicyState:
    """A VmClockPolicy as read from the API server."""

    namespace: str
    name: str
    generation: int
    created: datetime
    spec: Mapping[str, Any]
    annotations: Mapping[str, str] = field(default_factory=dict)
    status: Mapping[str, Any] = field(default_factory=dict)
    deleting: bool = False

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> PolicyState:
        meta = body.get("metadata") or {}
        return cls(
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            generation=int(meta.get("generation") or 0),
            created=parse_timestamp(str(meta.get("creationTimestamp") or "1970-01-01T00:00:00Z")),
            spec=body.get("spec") or {},
            annotations=meta.get("annotations") or {},
            status=body.get("status") or {},
            deleting=bool(meta.get("deletionTimestamp")),
        )

    @property
    def ref(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def paused(self) -> bool:
        return is_paused(self.annotations)

    def claim(self) -> PolicyClaim | None:
        """Ownership claim; None when the spec is invalid (such a policy claims nothing)."""
        try:
            spec = parse_policy_spec(self.spec)
        except InvalidSpec:
            return None
        return self.claim_for(spec)

    def claim_for(self, spec: PolicySpec) -> PolicyClaim:
        return PolicyClaim(
            self.namespace, self.name, self.created, spec.track, frozenset(spec.vm_uuids), self.deleting
        )


@dataclass(frozen=True)
class ReconcileResult:
    status: dict[str, Any]
    events: tuple[EventSpec, ...] = ()
    outcomes: tuple[WriteOutcome, ...] = ()
    retry_soon: bool = False  # something retryable failed: look again before the resync interval
    drift_detected: int = 0


def reconciling_status(state: PolicyState, now: datetime) -> dict[str, Any]:
    """Written before any work on a new generation, so no one mistakes the old verdict for the new one."""
    message = f"working on generation {state.generation}"
    return {
        **state.status,
        "observedGeneration": state.generation,
        "conditions": merge_conditions(
            state.status.get("conditions"),
            [
                Condition(READY, "Unknown", RECONCILING, message),
                Condition(SYNCED, "Unknown", RECONCILING, message),
            ],
            generation=state.generation,
            now=format_timestamp(now),
        ),
    }


def needs_reconciling_mark(state: PolicyState) -> bool:
    return previous_generation(state.status) != state.generation


def _finish(
    state: PolicyState,
    body: dict[str, Any],
    conditions: Sequence[Condition],
    now: datetime,
    stored_conditions: Sequence[Mapping[str, Any]] | None,
) -> dict[str, Any]:
    """Common tail: conditions, generation, the reconcile-requested echo, size bound, lastSyncTime."""
    stamp = format_timestamp(now)
    stored = stored_conditions if stored_conditions is not None else state.status.get("conditions")
    status = {
        **body,
        "observedGeneration": state.generation,
        "conditions": merge_conditions(stored, conditions, generation=state.generation, now=stamp),
    }
    requested = state.annotations.get(RECONCILE_REQUESTED_ANNOTATION)
    if requested is not None:
        # The annotation is unbounded but the CRD caps the echo at maxLength 1024; a longer value would get
        # the whole status PATCH rejected (422), so echo its first 1024 characters.
        status["lastHandledReconcileAt"] = requested[:MAX_HANDLED_RECONCILE_AT]
    status = bound_status(status)
    unchanged = {k: v for k, v in status.items() if k != "lastSyncTime"} == {
        k: v for k, v in state.status.items() if k != "lastSyncTime"
    }
    if not unchanged:
        status["lastSyncTime"] = stamp
    return status


def _blocked(
    state: PolicyState,
    ready: Condition,
    synced: Condition,
    now: datetime,
    stored: Sequence[Mapping[str, Any]] | None,
) -> ReconcileResult:
    """A reconcile that could not reach ZStack: keep the per-VM picture, replace the verdicts."""
    return ReconcileResult(_finish(state, dict(state.status), [ready, synced], now, stored))


def _first_error(plan: Plan, outcomes: Mapping[str, WriteOutcome]) -> str | None:
    errors = [o.error for o in outcomes.values() if o.error is not None]
    errors += [
        p.reading.error for p in plan.vms if p.reading.error is not None and not p.reading.error.not_found
    ]
    return str(errors[0]) if errors else None


async def reconcile(
    state: PolicyState,
    connect: Connect,
    others: Sequence[PolicyClaim],
    now: datetime,
    stored_conditions: Sequence[Mapping[str, Any]] | None = None,
) -> ReconcileResult:
    """One full reconcile of one policy. `stored_conditions`: the conditions as stored right now, when they
    differ from `state.status` (the handler already wrote `Reconciling`)."""
    try:
        spec = parse_policy_spec(state.spec)
    except InvalidSpec as problem:
        ready = Condition(READY, "False", "InvalidSpec", str(problem))
        synced = Condition(
            SYNCED, "False", "ReconcileError", f"not reconciled: the spec is invalid ({problem})"
        )
        return _blocked(state, ready, synced, now, stored_conditions)
    try:
        client = await connect(spec.connection_name)
    except ConnectionUnavailable as problem:
        message = f"{problem.reason}: {problem}"
        ready = Condition(READY, "False", CONNECTION_NOT_READY, message)
        # Paused wins for Synced: no writes would be made even with a working connection.
        synced = (
            synced_condition(paused=True, first_error=None)
            if state.paused
            else Condition(SYNCED, "False", CONNECTION_NOT_READY, message)
        )
        return _blocked(state, ready, synced, now, stored_conditions)

    previous = previous_vms(state.status)
    me = state.claim_for(spec)
    targets = dropped_targets(spec, previous)
    readings = await observe(client, [*spec.vm_uuids, *targets])
    plan = plan_policy(
        spec,
        readings,
        previous,
        paused=state.paused,
        same_generation=previous_generation(state.status) == state.generation,
        owners=conflicting_owners(me, others),
        restore_to=targets,
        handed_over=selected_elsewhere(targets, state.ref, others),
    )
    outcomes = await apply_writes(client, plan.writes)
    stamp = format_timestamp(now)
    entries = [
        selected_vm_entry(p, outcomes.get(p.uuid), previous.get(p.uuid), desired=spec.track, now=stamp)
        for p in plan.vms
    ]
    entries += [
        entry
        for r in plan.restores
        if (entry := restore_entry(r, outcomes.get(r.uuid), previous.get(r.uuid)))
    ]
    ready = ready_condition(entries, track=spec.track, enforce=spec.enforce, paused=state.paused)
    synced = synced_condition(paused=state.paused, first_error=_first_error(plan, outcomes))
    status = _finish(
        state,
        {**state.status, "summary": summarize(entries), "vms": entries},
        [ready, synced],
        now,
        stored_conditions,
    )
    events = transition_events(
        plan,
        outcomes.values(),
        entries,
        previous,
        was_paused=condition_reason(state.status, SYNCED) == PAUSED_REASON,
        paused=state.paused,
    )
    return ReconcileResult(
        status=status,
        events=tuple(events),
        outcomes=tuple(outcomes.values()),
        retry_soon=any(e["phase"] == Phase.PENDING.value for e in entries),
        drift_detected=sum(1 for p in plan.vms if p.drift),
    )


@dataclass(frozen=True)
class RestoreResult:
    events: tuple[EventSpec, ...]
    outcomes: tuple[WriteOutcome, ...]
    retryable_left: tuple[str, ...]  # VMs worth another attempt before giving up


async def restore_all(
    state: PolicyState, client: ClockTrackClient, others: Sequence[PolicyClaim]
) -> RestoreResult:
    """Deletion of a `Restore` policy: write each changed VM back to its previousTrack."""
    previous: Mapping[str, PreviousVm] = previous_vms(state.status)
    targets = restore_targets(previous)
    readings = await observe(client, list(targets))
    plans = plan_restores(
        targets, readings, paused=False, handed_over=selected_elsewhere(targets, state.ref, others)
    )
    writes = [p.write for p in plans if p.write is not None]
    outcomes = await apply_writes(client, writes)
    failed = [o for o in outcomes.values() if o.error is not None]
    unreadable = [
        p.uuid
        for p in plans
        if p.step is RestoreStep.UNREADABLE and p.reading.error is not None and p.reading.error.retryable
    ]
    events = list(write_events(outcomes.values()))
    if failed:
        codes = ", ".join(sorted({o.error.code for o in failed if o.error is not None}))
        events.append(EventSpec("Warning", "ApiError", f"restoring {len(failed)} VMs failed ({codes})"))
    retryable = [o.write.uuid for o in failed if o.error is not None and o.error.retryable] + unreadable
    return RestoreResult(tuple(events), tuple(outcomes.values()), tuple(sorted(retryable)))
