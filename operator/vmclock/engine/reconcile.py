"""The reconcile engine's entry points: observe -> plan -> apply -> status, with no Kubernetes I/O.

The kopf layer hands in a policy as read from the API (`PolicyState`), a way to get a ZStack client for the
policy's connection, and the claims of all other policies; it gets back the complete new status, the Events
to post and the write outcomes (for metrics). Whether to PATCH is the caller's decision: it compares the new
status with what is stored, so an unchanged reconcile writes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vmclock.engine.external import (
    MAX_JOBS_IN_FLIGHT,
    ClockTrackClient,
    apply_writes,
    observe,
    observe_selection,
)
from vmclock.engine.pending import PendingRestart
from vmclock.engine.plan import (
    Others,
    Phase,
    Plan,
    PolicyClaim,
    PreviousVm,
    RestoreStep,
    VmReading,
    WriteOutcome,
    conflicting_owners,
    found_vms,
    plan_policy,
    plan_restores,
    previous_generation,
    previous_vms,
    record_after,
    record_before,
    restore_targets,
    rivals_and_exceptions,
    selected_elsewhere,
    with_record,
)
from vmclock.engine.records import MemoryRecord, Origins, TrackRecord
from vmclock.engine.report import (
    EFFECTIVE,
    ELSEWHERE_WHY,
    MAX_MESSAGE,
    PAUSED_REASON,
    PENDING_RESTART_SINCE,
    READY,
    SYNCED,
    Condition,
    EventSpec,
    Selection,
    bound_status,
    condition_reason,
    effective_condition,
    expected_restarts,
    listed_first,
    listing,
    merge_conditions,
    oldest_pending_restart,
    one_line,
    pending_restarts,
    ready_condition,
    restarts_completed,
    restore_entry,
    selected_vm_entry,
    summarize,
    synced_condition,
    transition_events,
    write_events,
)
from vmclock.engine.spec import (
    DEFAULT_CONNECTION,
    RECONCILE_REQUESTED_ANNOTATION,
    InvalidSpec,
    PolicySpec,
    format_timestamp,
    is_paused,
    parse_policy_spec,
    parse_timestamp,
)
from vmclock.zstack.errors import ZStackError
from vmclock.zstack.models import Track

CONNECTION_NOT_READY = "ConnectionNotReady"
CONNECTED = "Connected"
RECONCILING = "Reconciling"
RESTORE_PENDING = "RestorePending"
SELECTION_FAILED = "SelectionFailed"
NOTHING_SELECTED = "NothingSelected"
NOTHING_SELECTED_MESSAGE = (
    "spec.selector matches no VM in ZStack, so there is nothing to do; if VMs were expected, check its "
    "values (zone and cluster UUIDs, platforms, namePattern, userTags, excludeVmUuids)"
)
APPLYING = "being written now"
MAX_HANDLED_RECONCILE_AT = 1024  # the CRD's maxLength for status.lastHandledReconcileAt


class ConnectionUnavailable(Exception):
    """The policy's ZStackConnection cannot be used; `reason` is the connection's own Ready reason."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


Connect = Callable[[str], Awaitable[ClockTrackClient]]
Read = Callable[[ClockTrackClient, Sequence[str]], Awaitable[dict[str, VmReading]]]
Save = Callable[[Mapping[str, Any]], Awaitable[None]]


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

    def claim_for(self, spec: PolicySpec, selected: frozenset[str] | None = None) -> PolicyClaim:
        """A selector policy claims what its selector resolved to (`selected`; unknown, so not backed,
        until resolved): status lists only some of its VMs, so its claim cannot be read from there."""
        by_selector = spec.selector is not None
        return PolicyClaim(
            self.namespace,
            self.name,
            self.created,
            spec.track,
            (selected or frozenset()) if by_selector else frozenset(spec.vm_uuids),
            self.deleting,
            enforce=spec.enforce,
            paused=self.paused,
            connection=spec.connection_name,
            found=selected if by_selector else found_vms(self.status),
            by_selector=by_selector,
        )


@dataclass(frozen=True)
class ReconcileResult:
    status: dict[str, Any]
    events: tuple[EventSpec, ...] = ()
    outcomes: tuple[WriteOutcome, ...] = ()
    retry_soon: bool = False  # something retryable failed: look again before the resync interval
    drift_detected: int = 0
    unsent: int = 0  # writes left for the next reconcile (time bound reached, or superseded)
    cut_short: bool = False  # the reconcile's deadline ended the apply: carry on at once, nothing failed
    running: frozenset[str] = frozenset()  # VMs whose write job was cut at the deadline: it may still run
    requeue_after_failure: bool = False  # could not reach ZStack at all: back off and try again
    selected: frozenset[str] | None = None  # a selector policy's VMs as just resolved (None: not resolved)
    matched: frozenset[str] = frozenset()  # all its selector picked, the VMs UUID policies took included
    vms: tuple[Mapping[str, Any], ...] = ()  # every selected VM's entry as just seen (status lists <= 500)


async def _save_nothing(_: Mapping[str, Any]) -> None:
    return None


def _never_stop() -> str | None:
    return None


async def _nothing_to_confirm() -> None:
    return None


@dataclass(frozen=True)
class ReconcileIO:
    """What the caller lends a reconcile besides the policy itself (defaults: standalone, unbounded).

    - `read(client, uuids)`: observe VMs; the operator passes a connection's SharedObserver here.
    - `save(status)`: persist a status now (progress while a long apply writes); raising
      stops the reconcile before anything more is written.
    - `stop_reason()`: why no further write may be submitted (a newer generation, the time bound), or None.
    - `concurrency`: writes in flight at once (each is an async ZStack job, mostly waiting).
    - `record`: the policy's previous-track record (`records.py`); stored before the writes it covers.
    - `deadline`: event-loop time by which the ZStack part (reads, submissions, job waits) must end; what is
      not done by then is left Pending (design.md §5.10).
    - `confirm_connection()`: awaited before the first ZStack write (never by a reconcile that only reads):
      the connection the reconcile was given may have been a lagging view; raising stops it unwritten.
    """

    read: Read = observe
    save: Save = _save_nothing
    stop_reason: Callable[[], str | None] = _never_stop
    concurrency: int = MAX_JOBS_IN_FLIGHT
    record: TrackRecord = field(default_factory=MemoryRecord)
    deadline: float | None = None
    confirm_connection: Callable[[], Awaitable[None]] = _nothing_to_confirm


def reconciling_status(state: PolicyState, now: datetime) -> dict[str, Any]:
    """Written before any work on a new generation, so no one mistakes the old verdict for the new one. A
    policy without any status yet has no verdict to mistake: it stays as it is (nothing to write), so a
    new policy's first reconcile writes its status once, at the end."""
    if not state.status:
        return {}
    message = f"working on generation {state.generation}"
    return {
        **state.status,
        "observedGeneration": state.generation,
        "conditions": merge_conditions(
            state.status.get("conditions"),
            [
                Condition(READY, "Unknown", RECONCILING, message),
                Condition(SYNCED, "Unknown", RECONCILING, message),
                Condition(EFFECTIVE, "Unknown", RECONCILING, message),
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
    if _comparable(status) != _comparable(state.status):
        status["lastSyncTime"] = stamp
    elif isinstance(stored_selector := state.status.get("selector"), Mapping):
        # An unchanged status is not written again just because the selection was resolved once more.
        status["selector"] = {**status["selector"], "resolvedAt": stored_selector.get("resolvedAt")}
    return status


def _comparable(status: Mapping[str, Any]) -> dict[str, Any]:
    """A status without the timestamps that move at every reconcile."""
    out = {k: v for k, v in status.items() if k != "lastSyncTime"}
    selector = out.get("selector")
    if isinstance(selector, Mapping):
        out["selector"] = {k: v for k, v in selector.items() if k != "resolvedAt"}
    return out


def _blocked(
    state: PolicyState,
    ready: Condition,
    synced: Condition,
    now: datetime,
    stored: Sequence[Mapping[str, Any]] | None,
    *,
    connection: str | None = None,
    selector_message: str | None = None,
) -> ReconcileResult:
    """A reconcile that could not reach ZStack: keep the per-VM picture, replace the verdicts.

    `connection`: the connection's Ready reason, recorded as `status.connection` so tools without string
    functions (Argo CD's health Lua) can tell a transient connection problem from one a person must fix.
    `selector_message`: why spec.selector could not be resolved, for `status.selector.message`."""
    body = dict(state.status)
    if selector_message is not None:
        body["selector"] = {**(state.status.get("selector") or {}), "message": selector_message}
    if connection is not None:
        name = str((state.spec.get("connectionRef") or {}).get("name") or DEFAULT_CONNECTION)
        body["connection"] = {"name": name, "reason": connection}
    return ReconcileResult(_finish(state, body, [ready, synced], now, stored), requeue_after_failure=True)


def _first_error(plan: Plan, outcomes: Mapping[str, WriteOutcome]) -> str | None:
    errors = [o.error for o in outcomes.values() if o.error is not None]
    errors += [
        p.reading.error for p in plan.vms if p.reading.error is not None and not p.reading.error.not_found
    ]
    return str(errors[0]) if errors else None


async def reconcile(
    state: PolicyState,
    connect: Connect,
    others: Others,
    now: datetime,
    stored_conditions: Sequence[Mapping[str, Any]] | None = None,
    *,
    io: ReconcileIO | None = None,
) -> ReconcileResult:
    """One full reconcile of one policy. `stored_conditions`: the conditions as stored right now, when they
    differ from `state.status` (the caller already wrote `Reconciling`). `io`: how to read (shared
    observation), where to record intent and progress, and when to stop submitting writes."""
    io = io or ReconcileIO()
    try:
        spec = parse_policy_spec(state.spec)
    except InvalidSpec as problem:
        ready = Condition(READY, "False", "InvalidSpec", str(problem))
        synced = Condition(
            SYNCED, "False", "ReconcileError", f"not reconciled: the spec is invalid ({problem})"
        )
        return _blocked(state, ready, synced, now, stored_conditions)
    try:
        async with asyncio.timeout_at(io.deadline):
            client = await connect(spec.connection_name)
    except TimeoutError:
        message = "checking the connection did not finish within the reconcile's time bound"
        ready = Condition(READY, "False", CONNECTION_NOT_READY, message)
        synced = Condition(SYNCED, "False", CONNECTION_NOT_READY, message)
        return _blocked(state, ready, synced, now, stored_conditions)
    except ConnectionUnavailable as problem:
        message = f"{problem.reason}: {problem}"
        ready = Condition(READY, "False", CONNECTION_NOT_READY, message)
        # Paused wins for Synced: no writes would be made even with a working connection.
        synced = (
            synced_condition(paused=True, first_error=None)
            if state.paused
            else Condition(SYNCED, "False", CONNECTION_NOT_READY, message)
        )
        return _blocked(state, ready, synced, now, stored_conditions, connection=problem.reason)

    try:
        async with asyncio.timeout_at(io.deadline):
            scope = await _scope(state, spec, client, others, io)
    except TimeoutError:
        message = "reading the VMs from ZStack did not finish within the reconcile's time bound"
        ready = Condition(READY, "False", "ReadTimeout", message)
        synced = Condition(SYNCED, "False", "ReconcileError", message)
        return _blocked(state, ready, synced, now, stored_conditions)
    except (ZStackError, ValueError) as problem:  # only a selector's resolution raises
        message = one_line(f"could not resolve spec.selector: {problem}", MAX_MESSAGE)
        ready = Condition(READY, "False", SELECTION_FAILED, message)
        synced = Condition(SYNCED, "False", "ReconcileError", message)
        return _blocked(state, ready, synced, now, stored_conditions, selector_message=message)
    plan = plan_policy(
        spec,
        scope.readings,
        scope.previous,
        paused=state.paused,
        same_generation=previous_generation(state.status) == state.generation,
        owners={u: o.seen_by(state.namespace) for u, o in conflicting_owners(scope.me, scope.rivals).items()},
        restore_to=scope.targets,
        handed_over=selected_elsewhere(scope.targets, state.ref, scope.others),
        uuids=scope.uuids,
        elsewhere=_elsewhere(scope.targets, io.record.origins(), client.destination),
    )
    previous = scope.previous
    draft = _Draft(
        state,
        spec,
        plan,
        previous=previous,
        now=now,
        stored_conditions=stored_conditions,
        selection=scope.selection,
    )
    record, stored, origins = scope.record, scope.stored_record, io.record.origins()
    if plan.writes:
        await io.confirm_connection()  # before the record too: its readings came through that connection
        record, origins = await _record_intent(
            io.record, plan, scope, origins, destination=client.destination, now=draft.stamp
        )
        stored = record

    async def progress(done: Mapping[str, WriteOutcome]) -> None:
        await io.save(
            draft.status(done, unsent={w.uuid: APPLYING for w in plan.writes if w.uuid not in done})
        )

    applied = await apply_writes(
        client,
        plan.writes,
        concurrency=io.concurrency,
        stop=io.stop_reason,
        progress=progress,
        deadline=io.deadline,
    )
    kept = record_after(record, scope.uuids, plan.restores, applied.outcomes)
    status, entries = draft.final(applied.outcomes, applied.unsent)
    await _store_record(io.record, stored, (kept, origins), pending_restarts(entries, previous))
    await io.record.confirm()  # the status was computed from it
    events = [
        *transition_events(
            plan,
            applied.outcomes.values(),
            entries,
            previous,
            was_paused=condition_reason(state.status, SYNCED) == PAUSED_REASON,
            paused=state.paused,
        ),
        *restarts_completed(state.status, status),
    ]
    if condition_reason(status, READY) == NOTHING_SELECTED != condition_reason(state.status, READY):
        events.append(EventSpec("Warning", NOTHING_SELECTED, NOTHING_SELECTED_MESSAGE))
    return ReconcileResult(
        status=status,
        events=tuple(events),
        outcomes=tuple(applied.outcomes.values()),
        retry_soon=any(e["phase"] == Phase.PENDING.value for e in entries),
        drift_detected=sum(1 for p in plan.vms if p.drift),
        unsent=len(applied.unsent),
        cut_short=applied.cut_short,
        running=applied.running,
        selected=frozenset(scope.uuids) if scope.selection is not None else None,
        matched=scope.matched,
        vms=tuple(entries),
    )


async def _record_intent(
    record: TrackRecord, plan: Plan, scope: _Scope, origins: Origins, *, destination: str, now: str
) -> tuple[dict[str, Track], dict[str, str]]:
    """Intent before action (design.md §5.4): every VM about to be written has its previousTrack stored in
    the record before the first SetVmClockTrack for it leaves, and so has every wait for a restart those
    writes will start. The previous tracks are stored before every apply, changed or not: the ConfigMap may
    have been deleted or edited since it was last read, and a write must never leave without its intent on
    record. Status shows the intent from the first progress write on (the VMs not done yet are Pending,
    "being written now"): an apply that finishes before it writes status once, at the end."""
    tracks, origins = record_before(scope.record, plan.writes, scope.readings, origins, destination)
    await record.store(tracks, origins)
    waiting = record.pending_restarts()
    expected = expected_restarts(waiting, plan, now)
    if expected != waiting:
        await record.store_pending_restarts(expected)
    await record.confirm()
    return tracks, origins


async def _store_record(
    record: TrackRecord,
    stored: Mapping[str, Track],
    wanted: tuple[Mapping[str, Track], Origins],
    waiting: Mapping[str, PendingRestart],
) -> None:
    """Each part of the record is written only when it changed: a resync that changes nothing writes
    nothing, and one in which a restart is seen done writes the pending restarts once."""
    tracks, origins = wanted
    if tracks != stored:
        await record.store(tracks, origins)
    if waiting != record.pending_restarts():
        await record.store_pending_restarts(waiting)


@dataclass(frozen=True)
class _Scope:
    """The VMs one reconcile is about and what is known of them, for either kind of policy."""

    me: PolicyClaim
    uuids: tuple[str, ...]
    readings: Mapping[str, VmReading]
    previous: Mapping[str, PreviousVm]
    targets: Mapping[str, Track]  # VMs no longer selected, to restore (Restore policies only)
    others: Sequence[PolicyClaim]  # the other policies' claims on any of those VMs or the selected ones
    rivals: Sequence[PolicyClaim]  # of those, the ones the age rule applies against
    selection: Selection | None = None
    record: Mapping[str, Track] = field(default_factory=dict)  # the previous-track record
    stored_record: Mapping[str, Track] = field(default_factory=dict)  # as stored (`record` may add to it)
    matched: frozenset[str] = frozenset()  # a selector policy's whole match (`PolicyClaim.matched`)


async def _scope(
    state: PolicyState,
    spec: PolicySpec,
    client: ClockTrackClient,
    others: Others,
    io: ReconcileIO,
) -> _Scope:
    """A UUID policy reads its listed VMs; a selector policy resolves its selector (raising when that
    fails) and leaves VMs named by UUID policies alone. Either takes previous tracks from the one record
    (design.md §5.12), so a switch between the two forms loses nothing it must put back. The other
    policies' claims are asked for once those VMs are known."""
    previous = previous_vms(state.status)
    stored = await io.record.load()
    restarts = io.record.pending_restarts()
    # previousTracks in status that the record lacks (written by an operator that kept them only there)
    # join the record
    record = {**restore_targets(previous), **stored}
    if spec.selector is None:
        me = state.claim_for(spec)
        selected = set(spec.vm_uuids)
        targets = {u: t for u, t in record.items() if u not in selected} if spec.restore else {}
        readings = await io.read(client, [*spec.vm_uuids, *targets])
        claims = others(selected | targets.keys())
        rivals, _ = rivals_and_exceptions(me, claims)
        memory = with_record(previous, record, restarts)
        return _Scope(me, spec.vm_uuids, readings, memory, targets, claims, rivals, None, record, stored)
    resolved = await observe_selection(client, spec.selector)
    claims = others(resolved.keys() | record.keys())
    rivals, exceptions = rivals_and_exceptions(state.claim_for(spec), claims)
    mine = {uuid: reading for uuid, reading in resolved.items() if uuid not in exceptions}
    selection = Selection(mine, matched=len(resolved), excepted=len(resolved) - len(mine))
    targets = {u: t for u, t in record.items() if u not in mine} if spec.restore else {}
    readings = {**(await io.read(client, list(targets)) if targets else {}), **mine}
    me = state.claim_for(spec, selected=frozenset(mine))
    previous = with_record(previous, record, restarts)
    return _Scope(
        me,
        selection.uuids,
        readings,
        previous,
        targets,
        claims,
        rivals,
        selection,
        record,
        stored,
        frozenset(resolved),
    )


class _Draft:
    """The status of one reconcile at any point of its apply: while a long apply writes (its intent and
    progress) and at the end. One place builds both, so they can never disagree."""

    def __init__(
        self,
        state: PolicyState,
        spec: PolicySpec,
        plan: Plan,
        *,
        previous: Mapping[str, PreviousVm],
        now: datetime,
        stored_conditions: Sequence[Mapping[str, Any]] | None,
        selection: Selection | None = None,
    ) -> None:
        self.state, self.spec, self.plan, self.previous = state, spec, plan, previous
        self.selection = selection
        self.now, self.stored_conditions = now, stored_conditions
        self.stamp = format_timestamp(now)

    def entries(
        self, outcomes: Mapping[str, WriteOutcome], unsent: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        entries = [
            selected_vm_entry(
                p,
                outcomes.get(p.uuid),
                self.previous.get(p.uuid),
                desired=self.spec.track,
                now=self.stamp,
                unsent=unsent.get(p.uuid),
            )
            for p in self.plan.vms
        ]
        entries += [
            entry
            for r in self.plan.restores
            if (entry := restore_entry(r, outcomes.get(r.uuid), self.previous.get(r.uuid), now=self.stamp))
        ]
        return entries

    def status(self, outcomes: Mapping[str, WriteOutcome], *, unsent: Mapping[str, str]) -> dict[str, Any]:
        """Intent and progress: the VMs still to be written show as Pending with their previousTrack."""
        entries = self.entries(outcomes, unsent)
        ready = ready_condition(entries, track=self.spec.track, enforce=self.spec.enforce, paused=False)
        message = f"writing track {self.spec.track}: {len(outcomes)} of {len(self.plan.writes)} writes done"
        synced = Condition(SYNCED, "Unknown", RECONCILING, message)
        return self._finish(entries, ready, synced)

    def final(
        self, outcomes: Mapping[str, WriteOutcome], unsent: Mapping[str, str]
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        entries = self.entries(outcomes, unsent)
        ready = ready_condition(
            entries, track=self.spec.track, enforce=self.spec.enforce, paused=self.state.paused
        )
        synced = synced_condition(paused=self.state.paused, first_error=_first_error(self.plan, outcomes))
        if self.selection is not None and self.selection.matched == 0:
            ready = Condition(READY, "True", NOTHING_SELECTED, NOTHING_SELECTED_MESSAGE)
        return self._finish(entries, ready, synced, effective_condition(entries)), entries

    def _finish(self, entries: list[dict[str, Any]], *conditions: Condition) -> dict[str, Any]:
        """`conditions`: those this point of the reconcile knows; the others keep what is stored."""
        body = {k: v for k, v in self.state.status.items() if k != PENDING_RESTART_SINCE}
        body.update(summary=summarize(entries), vms=entries)
        if oldest := oldest_pending_restart(entries):
            body[PENDING_RESTART_SINCE] = oldest
        if self.selection is not None:
            body["vms"], omitted = listed_first(entries)
            body["selector"] = self.selection.status(self.stamp, omitted)
        body["connection"] = {"name": self.spec.connection_name, "reason": CONNECTED}
        return _finish(self.state, body, conditions, self.now, self.stored_conditions)


@dataclass(frozen=True)
class RestoreResult:
    events: tuple[EventSpec, ...]
    outcomes: tuple[WriteOutcome, ...]
    left: tuple[str, ...]  # VMs not restored yet; the deletion waits for them
    why: str = ""  # what stands in the way, for the condition and the Warning Event
    cut_short: bool = False  # only the reconcile's time bound stands in the way: carry on at once
    running: frozenset[str] = frozenset()  # VMs whose restore job was cut at the deadline: it may still run

    @property
    def done(self) -> bool:
        return not self.left


async def restore_all(
    state: PolicyState,
    client: ClockTrackClient,
    others: Others,
    io: ReconcileIO | None = None,
    *,
    running: Collection[str] = (),
) -> RestoreResult:
    """Deletion of a `Restore` policy: write each changed VM back to its previousTrack.

    A promise (design.md §5.6): every VM that is still there, not handed over to another policy and not yet
    back on its previous track is `left`, whatever the error (retryable or not); the caller keeps the
    finalizer and tries again with backoff until nothing is left."""
    io = io or ReconcileIO()
    # Every kind of policy keeps its record (status lists only some of a selector policy's VMs)
    targets = restore_targets(previous_vms(state.status)) | await io.record.load()
    elsewhere = _elsewhere(targets, io.record.origins(), client.destination)
    try:
        async with asyncio.timeout_at(io.deadline):
            readings = await io.read(client, list(targets))
    except TimeoutError:
        why = "reading the VMs from ZStack did not finish within the reconcile's time bound"
        return RestoreResult((), (), tuple(sorted(targets)), why, cut_short=True)
    plans = plan_restores(
        targets,
        readings,
        paused=False,
        handed_over=selected_elsewhere(targets, state.ref, others(targets.keys())),
        elsewhere=elsewhere,
        rewrite=running,
    )
    writes = [p.write for p in plans if p.write is not None]
    if writes:
        await io.confirm_connection()
    applied = await apply_writes(
        client, writes, concurrency=io.concurrency, stop=io.stop_reason, deadline=io.deadline
    )
    outcomes = applied.outcomes
    failed = [o for o in outcomes.values() if o.error is not None]
    unreadable = [p for p in plans if p.step is RestoreStep.UNREADABLE]
    moved = [p.uuid for p in plans if p.step is RestoreStep.ELSEWHERE]
    events = list(write_events(outcomes.values()))
    problems = [str(o.error) for o in failed if o.error is not None]
    problems += [str(p.reading.error) for p in unreadable if p.reading.error is not None]
    problems += [ELSEWHERE_WHY] if moved else []
    blocked = {o.write.uuid for o in failed} | {p.uuid for p in unreadable} | set(moved)
    left = sorted(blocked | set(applied.unsent))
    why = ""
    if left:
        cause = problems[0] if problems else next(iter(applied.unsent.values()), "")
        why = f"{len(left)} of {len(targets)} VMs not restored yet ({cause}): {listing(left)}"
    # Only the slice's end or a newer generation stopped it (nothing failed): it goes on at once.
    cut_short = not blocked and bool(applied.unsent)
    return RestoreResult(
        tuple(events),
        tuple(outcomes.values()),
        tuple(left),
        why,
        cut_short=cut_short,
        running=applied.running,
    )


def _elsewhere(targets: Mapping[str, Track], origins: Mapping[str, str], here: str) -> set[str]:
    """VMs the record says were changed through another management node or account than `here`."""
    return {uuid for uuid in targets if (origin := origins.get(uuid)) and origin != here}


def restore_pending_status(state: PolicyState, why: str, now: datetime) -> dict[str, Any]:
    """What a deleting `Restore` policy shows while it cannot finish: the finalizer stays, and says why."""
    hint = (
        "the deletion completes once every VM is restored; to give up instead, set spec.deletionPolicy "
        "to Orphan (or remove the finalizer, see README)"
    )
    return failed_status(state, RESTORE_PENDING, why, now, ready_message=f"{why}; {hint}")


def failed_status(
    state: PolicyState, reason: str, message: str, now: datetime, *, ready_message: str | None = None
) -> dict[str, Any]:
    """The last status with Ready and Synced False for `reason`: a reconcile that stopped before ZStack
    (a record it may not use, a status the API server refused) keeps the per-VM picture and says why."""
    ready = Condition(READY, "False", reason, one_line(ready_message or message, MAX_MESSAGE))
    synced = Condition(SYNCED, "False", reason, one_line(message, MAX_MESSAGE))
    return _finish(state, dict(state.status), [ready, synced], now, None)
