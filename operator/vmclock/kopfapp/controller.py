"""The policy controller: one work queue, a pool of workers, and what a reconcile needs (design.md §5).

Every entry path only enqueues a policy's Ref: kopf's handlers (create, resume, spec change, the two trigger
annotations, deletion), the per-connection resync rounds, a connection turning ready or broken, and a policy
going away that shared VMs with others. Workers take Refs from the queue, which guarantees one reconcile per
policy at a time and never loses a request (it runs again right after), and backs off per policy on failure.

A worker always starts from the object as the API server has it now (a watch event's body may predate the
status the previous reconcile wrote) and writes status only onto that same incarnation of it (uid-guarded),
so a reconcile of a deleted policy never lands on a re-created one of the same name. When a policy is gone,
the worker that finds out forgets it everywhere (schedule, backoff, metrics): nothing else touches that state,
so nothing can re-add it behind the worker's back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

import kopf

from vmclock.connections import ConnectionManager, parse_connection_spec
from vmclock.connections.spec import DEFAULT_MAX_CONCURRENT, ConnectionSpec, resync_interval
from vmclock.engine import (
    ClockTrackClient,
    ConnectionUnavailable,
    EventSpec,
    PolicyClaim,
    PolicyState,
    needs_reconciling_mark,
    overlapping,
    reconcile,
    reconciling_status,
    restore_all,
)
from vmclock.engine.conditions import READY, find_condition
from vmclock.engine.observation import SharedObserver
from vmclock.engine.reconcile import ReconcileIO, ReconcileResult, restore_pending_status
from vmclock.engine.spec import CONNECTION_PLURAL, POLICY_PLURAL, InvalidSpec, PolicySpec, parse_policy_spec
from vmclock.kopfapp.claims import IndexedPolicy, PolicyIndex, all_entries, of_connection
from vmclock.kopfapp.metrics import Metrics
from vmclock.kopfapp.records import ConfigMapRecord, delete_record
from vmclock.kopfapp.scheduler import ResyncClock
from vmclock.kopfapp.statuswrite import status_patch
from vmclock.kubeapi import KubeApi, ObjectReplaced
from vmclock.refs import Ref
from vmclock.workqueue import DEFAULT_BACKOFF, ShutDown, WorkQueue

log = logging.getLogger(__name__)

WORKERS = 8
RECONCILE_SECONDS = 120.0  # one reconcile's time bound for submitting writes (design.md §5.3)
WRITES_PER_REQUEST_SLOT = 4  # async jobs mostly wait: several in flight per concurrent HTTP request
MAX_WRITES_IN_FLIGHT = 64
DRAIN_SECONDS = 10.0
RESTORE_PENDING_EVENT = "RestorePending"


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def as_body(body: Mapping[str, Any]) -> kopf.Body:
    return body if isinstance(body, kopf.Body) else kopf.Body(cast(kopf.RawBody, dict(body)))


def post_events(body: Mapping[str, Any], events: Sequence[EventSpec]) -> None:
    for event in events:
        kopf.event(as_body(body), type=event.type, reason=event.reason, message=event.message)


class StatusSink:
    """Status writes of one reconcile, onto one incarnation of the object, sending only what changed."""

    def __init__(self, kube: KubeApi, ref: Ref, uid: str, stored: Mapping[str, Any]) -> None:
        self._kube, self._ref, self.uid = kube, ref, uid
        self.stored: dict[str, Any] = dict(stored)
        self.void = False  # the object was deleted or replaced: nothing more may be written for it

    async def save(self, wanted: Mapping[str, Any]) -> None:
        patch = status_patch(self.stored, wanted)
        if not patch:
            return
        try:
            present = await self._kube.patch_status(
                POLICY_PLURAL, *self._ref, patch, uid=self.uid, status=wanted
            )
        except ObjectReplaced:
            self.void = True
            raise
        if not present:
            self.void = True
            raise ObjectReplaced(f"VmClockPolicy {self._ref} is gone")
        self.stored = dict(wanted)


class PolicyController:
    def __init__(
        self,
        kube: KubeApi,
        connections: ConnectionManager,
        metrics: Metrics,
        *,
        workers: int = WORKERS,
        reconcile_seconds: float = RECONCILE_SECONDS,
        now: Callable[[], datetime] = utcnow,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._connections = connections
        self._metrics = metrics
        self._workers = workers
        self._reconcile_seconds = reconcile_seconds
        self._now = now
        self._clock = clock
        self.queue: WorkQueue[Ref] = WorkQueue(DEFAULT_BACKOFF, clock, observer=metrics)  # metrics
        metrics.watch_queue(self.queue.depth, self.queue.running_since)  # metrics
        metrics.set_workers(workers, self.queue.active)  # metrics
        self.resync = ResyncClock(clock)
        self._index: PolicyIndex | None = None
        self._observers: dict[Ref, SharedObserver] = {}
        self._generations: dict[Ref, tuple[str, int]] = {}  # newest (uid, generation) a handler saw
        self._restored: dict[Ref, asyncio.Event] = {}
        self._restore_problems: dict[Ref, str] = {}
        # What each selector policy last resolved to (kopf's index only has its spec), and the uid of each
        # selector policy, whose record ConfigMap is deleted once the policy is gone.
        self._selections: dict[Ref, frozenset[str]] = {}
        self._record_owners: dict[Ref, str] = {}
        self._tasks: list[asyncio.Task[None]] = []

    # --- entry points: they only enqueue -------------------------------------------------------------

    def bind(self, index: PolicyIndex) -> None:
        """kopf hands its live index to handlers and daemons only; remember it for the workers, and start
        them from here: a task inherits the context it is created in, and only inside handlers and daemons
        does kopf's context carry what `kopf.event` needs to post (at start-up it does not yet)."""
        self._index = index
        if not self._tasks:
            self.start()

    def enqueue(self, ref: Ref, *, uid: str = "", generation: int | None = None) -> None:
        """Ask for a reconcile; `generation` (from a spec change) supersedes unsent writes of older ones of
        the same object (`uid`): a re-created policy of the same name starts again from generation 1."""
        if generation is not None:
            seen = self._generations.get(ref)
            if seen is None or seen[0] != uid or generation > seen[1]:
                self._generations[ref] = (uid, generation)
        self.queue.add(ref)

    def _superseded_by(self, ref: Ref, state: PolicyState, uid: str) -> int | None:
        """A newer generation of the same object that a handler has seen, if any."""
        seen = self._generations.get(ref)
        if seen is None or seen[0] != uid or seen[1] <= state.generation:
            return None
        return seen[1]

    def kick_sharing(self, uuids: Iterable[str], me: Ref) -> None:
        """Ownership of shared VMs may have changed: the other policies selecting them look again now."""
        shared = set(uuids) | self._selections.get(me, frozenset())
        for claim in overlapping(shared, me, self._claims()):
            self.queue.add(Ref(claim.namespace, claim.name))

    def kick_connection(self, connection: Ref) -> None:
        """The connection turned ready or broken (or changed): every policy on it looks again now."""
        self._enqueue_round(connection, [e.ref for e in self._entries_of(connection)])

    def start_round(self, connection: Ref, spec: ConnectionSpec) -> None:
        """Called every tick of the connection's loop: queue the policies due for a drift check, together."""
        entries = self._entries_of(connection)
        due = self.resync.round((e.ref, resync_interval(e.resync_seconds, spec)) for e in entries)
        self._enqueue_round(connection, due)

    def _enqueue_round(self, connection: Ref, refs: Sequence[Ref]) -> None:
        if not refs:
            return
        wanted = set(refs)
        observer = self._observer(connection)
        for entry in self._entries_of(connection):
            if entry.ref in wanted:
                observer.hint(entry.uuids)
        for ref in refs:
            self.queue.add(ref)

    async def wait_restored(self, ref: Ref, within: float) -> bool:
        """For the deletion handler: True once the policy's VMs are restored (or it no longer needs to)."""
        event = self._restored.setdefault(ref, asyncio.Event())
        if not event.is_set() and ref not in self.queue:
            self.queue.add(ref)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), within)
        return event.is_set()

    def restore_problem(self, ref: Ref) -> str | None:
        return self._restore_problems.get(ref)

    def restore_users(self, connection: Ref) -> list[IndexedPolicy]:
        """Restore policies on this connection: they may need it to put VMs back, so it must outlive them."""
        return [e for e in self._entries_of(connection) if e.restore]

    def forget_connection(self, connection: Ref) -> None:
        self._observers.pop(connection, None)

    # --- the workers -----------------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._work(), name=f"vmclock-worker-{i}") for i in range(self._workers)
        ]

    async def stop(self) -> None:
        """Let running reconciles finish for a moment (a half-written status is worse than a late stop)."""
        self.queue.shut_down()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=DRAIN_SECONDS)
            for task in late:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _work(self) -> None:
        while True:
            try:
                ref = await self.queue.get()
            except ShutDown:
                return
            started, result = self._clock(), "error"  # metrics
            try:
                result = await self._process(ref)
            except ObjectReplaced:
                self.queue.add(ref)  # look again: the object is gone (then forgotten) or a new one exists
                result = "requeue"  # metrics
            except Exception:
                delay = self.queue.add_rate_limited(ref)
                log.exception("reconciling VmClockPolicy %s failed; retrying in %.1fs", ref, delay)
            finally:
                self._metrics.reconciled(result, self._clock() - started)  # metrics
                self.queue.done(ref)

    async def _process(self, ref: Ref) -> str:
        """Returns controller-runtime's name for how the reconcile ended (metrics)."""
        body = await self._kube.read_object(POLICY_PLURAL, *ref)
        if body is None:
            if ref in self._record_owners:  # an Orphan policy has no finalizer: its DELETED event lands here
                await delete_record(self._kube, ref, owner_uid=self._record_owners[ref])
            self._forget(ref)
            return "success"
        state = PolicyState.from_body(body)
        if state.spec.get("selector") is not None:
            self._record_owners[ref] = _uid(body)
        if state.deleting:
            return await self._finalize(ref, body, state)
        return await self._reconcile(ref, body, state)

    def _forget(self, ref: Ref) -> None:
        self.queue.discard(ref)
        self.resync.forget(ref)
        self._metrics.forget_policy(ref)
        self._generations.pop(ref, None)
        self._restore_problems.pop(ref, None)
        self._selections.pop(ref, None)
        self._record_owners.pop(ref, None)
        event = self._restored.pop(ref, None)
        if event is not None:
            event.set()  # the object is gone: whoever waits for its restore has nothing left to wait for

    # --- reconcile ---------------------------------------------------------------------------------------

    async def _reconcile(self, ref: Ref, body: Mapping[str, Any], state: PolicyState) -> str:
        observed_at = time.time()  # metrics: the observation below is made (or shared) from now on
        sink = StatusSink(self._kube, ref, _uid(body), state.status)
        stored_conditions = None
        new_generation = needs_reconciling_mark(state)
        if new_generation:
            await sink.save(reconciling_status(state, self._now()))
            stored_conditions = sink.stored["conditions"]
        spec = _spec_or_none(state)
        raw = await self._connection_spec(ref.namespace, spec.connection_name) if spec else None
        connection_spec = parse_connection_spec(raw) if raw is not None else None
        async with contextlib.AsyncExitStack() as leases:

            async def connect(name: str) -> ClockTrackClient:
                return await leases.enter_async_context(self._connections.lease(ref.namespace, name, raw))

            io = self._io(ref, state, sink, spec, connection_spec)
            try:
                result = await reconcile(
                    state, connect, self._others(ref), self._now(), stored_conditions, io=io
                )
            finally:
                self._written(ref, spec, self._uuids_of(state))
        self._remember_selection(ref, spec, result.selected)
        await sink.save(result.status)
        post_events(body, result.events)
        interval = resync_interval(spec.resync_interval_seconds if spec else None, connection_spec)
        observed = None if result.requeue_after_failure else observed_at  # metrics: nothing observed
        self._measure(ref, result.status, result, interval=interval, observed_at=observed)  # metrics
        self.resync.record(ref, interval)
        outcome = self._requeue(ref, state, result, sink.uid)
        if new_generation:
            self.kick_sharing(self._uuids_of(state), ref)
        summary = result.status.get("summary") or {}
        log.info(
            "VmClockPolicy %s generation %s: %s writes, %s",
            ref,
            state.generation,
            len(result.outcomes),
            {k: v for k, v in summary.items() if v},
        )
        return outcome

    def _io(
        self,
        ref: Ref,
        state: PolicyState,
        sink: StatusSink,
        spec: PolicySpec | None,
        connection: ConnectionSpec | None,
    ) -> ReconcileIO:
        since = self.queue.requested_at(ref)
        observer = self._observer(Ref(ref.namespace, spec.connection_name)) if spec else SharedObserver()
        deadline = self._clock() + self._reconcile_seconds

        async def read(client: ClockTrackClient, uuids: Sequence[str]) -> Any:
            return await observer.read(client, uuids, since)

        def stop_reason() -> str | None:
            if sink.void:
                return "the policy was deleted or replaced"
            latest = self._superseded_by(ref, state, sink.uid)
            if latest is not None:
                return f"not sent: generation {latest} superseded generation {state.generation}"
            if self._clock() > deadline:
                return f"not sent yet: a reconcile sends writes for at most {self._reconcile_seconds:.0f}s"
            return None

        slots = connection.max_concurrent_requests if connection is not None else DEFAULT_MAX_CONCURRENT
        in_flight = min(MAX_WRITES_IN_FLIGHT, WRITES_PER_REQUEST_SLOT * slots)
        return ReconcileIO(
            read=read,
            save=sink.save,
            stop_reason=stop_reason,
            concurrency=in_flight,
            record=ConfigMapRecord(self._kube, ref, self._record_owners.get(ref, "")),
        )

    def _requeue(self, ref: Ref, state: PolicyState, result: ReconcileResult, uid: str) -> str:
        superseded = self._superseded_by(ref, state, uid) is not None
        if result.unsent and not superseded:
            self.queue.add(ref)  # the time bound cut it short: carry on right away, nothing failed
            return "requeue"  # metrics
        if result.retry_soon or result.requeue_after_failure:
            self.queue.add_rate_limited(ref)
            return "error" if result.requeue_after_failure else "requeue"  # metrics
        self.queue.forget(ref)
        return "success"  # metrics

    # --- deletion of a Restore policy -------------------------------------------------------------------

    async def _finalize(self, ref: Ref, body: Mapping[str, Any], state: PolicyState) -> str:
        """A deleting policy: restore its VMs if it is a Restore policy; a promise kept until done."""
        spec = _spec_or_none(state)
        if spec is None or not spec.restore:
            self._restore_done(ref)  # nothing to put back (kopf drops the finalizer of Orphan policies)
            return "success"
        if state.paused:
            message = "deleted while paused: VMs keep their current track"
            post_events(body, [EventSpec("Normal", "Paused", message)])
            self._restore_done(ref)
            return "success"
        sink = StatusSink(self._kube, ref, _uid(body), state.status)
        raw = await self._connection_spec(ref.namespace, spec.connection_name)
        try:
            async with self._connections.lease(
                ref.namespace, spec.connection_name, raw, for_restore=True
            ) as client:
                io = self._io(ref, state, sink, spec, parse_connection_spec(raw) if raw else None)
                try:
                    result = await restore_all(state, client, self._others(ref), io)
                finally:
                    self._written(ref, spec, self._uuids_of(state))
        except ConnectionUnavailable as problem:
            await self._restore_blocked(ref, body, state, sink, f"cannot reach ZStack: {problem}")
            return "error"  # metrics
        post_events(body, result.events)
        self._measure(ref, state.status, None, result.outcomes)
        if not result.done:
            await self._restore_blocked(ref, body, state, sink, result.why)
            return "requeue"  # metrics
        log.info("VmClockPolicy %s deleted: restored %s VMs", ref, sum(1 for o in result.outcomes if o.ok))
        if spec.selector is not None:
            await delete_record(self._kube, ref, owner_uid=_uid(body))
        self._restore_done(ref)
        return "success"

    async def _restore_blocked(
        self, ref: Ref, body: Mapping[str, Any], state: PolicyState, sink: StatusSink, why: str
    ) -> None:
        """Say why in a condition and a Warning Event (when the reason is new), then try again later."""
        self._restore_problems[ref] = why
        wanted = restore_pending_status(state, why, self._now())
        before = find_condition(state.status.get("conditions"), READY) or {}
        after = find_condition(wanted.get("conditions"), READY) or {}
        await sink.save(wanted)
        if before.get("message") != after.get("message"):
            post_events(body, [EventSpec("Warning", RESTORE_PENDING_EVENT, why)])
        delay = self.queue.add_rate_limited(ref)
        log.warning("VmClockPolicy %s: restore not finished (%s); trying again in %.1fs", ref, why, delay)

    def _restore_done(self, ref: Ref) -> None:
        self._restore_problems.pop(ref, None)
        self.queue.forget(ref)
        self._restored.setdefault(ref, asyncio.Event()).set()

    # --- helpers -------------------------------------------------------------------------------------------

    def _written(self, ref: Ref, spec: PolicySpec | None, uuids: Iterable[str]) -> None:
        """After a reconcile that may have written: what was read of its VMs before is stale now (the
        cache is per connection and shared, so another round must not reuse a pre-write reading)."""
        if spec is not None:
            observer = self._observers.get(Ref(ref.namespace, spec.connection_name))
            if observer is not None:
                observer.invalidate(uuids)

    def _observer(self, connection: Ref) -> SharedObserver:
        return self._observers.setdefault(connection, SharedObserver(self._clock))

    def _entries(self) -> list[IndexedPolicy]:
        return list(all_entries(self._index)) if self._index is not None else []

    def _entries_of(self, connection: Ref) -> list[IndexedPolicy]:
        return of_connection(self._index, connection) if self._index is not None else []

    def _remember_selection(self, ref: Ref, spec: PolicySpec | None, selected: frozenset[str] | None) -> None:
        """Keep what a selector policy resolved to (a failed resolution keeps the last one); VMs that
        entered or left it may change who owns them, so the policies sharing those look again."""
        if spec is None or spec.selector is None:
            self._selections.pop(ref, None)
            return
        if selected is None:
            return
        before = self._selections.get(ref)
        self._selections[ref] = selected
        changed = selected if before is None else before ^ selected
        if changed:
            self.kick_sharing(changed, ref)

    def _claim(self, entry: IndexedPolicy) -> PolicyClaim | None:
        """The entry's claim; a selector policy's with what it last resolved to (unknown: not backed)."""
        claim = entry.claim
        if claim is None or not claim.by_selector:
            return claim
        selected = self._selections.get(entry.ref)
        return replace(claim, vm_uuids=selected or frozenset(), found=selected)

    def _claims(self) -> list[PolicyClaim]:
        return [claim for e in self._entries() if (claim := self._claim(e)) is not None]

    def _uuids_of(self, state: PolicyState) -> set[str]:
        """What a policy selects plus what its status still lists (VMs awaiting a restore)."""
        return _uuids_of(state) | self._selections.get(Ref(state.namespace, state.name), frozenset())

    def _others(self, ref: Ref) -> list[PolicyClaim]:
        """The claims that count against `ref` (design.md §6.3): backed ones (Enforce, not paused, VMs its
        own observation found) whose connection is Ready and reaches the same management node as ours. A
        tenant cannot block another tenant's VMs by listing UUIDs it cannot see or act on."""
        entries = self._entries()
        mine = next((e for e in entries if e.ref == ref), None)
        node = self._connections.node(ref.namespace, mine.connection) if mine is not None else None
        if node is None:
            return []
        claims = []
        for entry in entries:
            claim = self._claim(entry) if entry.ref != ref else None
            backed = claim.backed() if claim is not None else None
            if backed is not None and self._connections.node(entry.ref.namespace, entry.connection) == node:
                claims.append(backed)
        return claims

    async def _connection_spec(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        """The connection's spec, or None when it does not exist or is being deleted."""
        body = await self._kube.read_object(CONNECTION_PLURAL, namespace, name)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            return None
        spec: Mapping[str, Any] = body.get("spec") or {}
        return spec

    def _measure(
        self,
        ref: Ref,
        status: Mapping[str, Any],
        result: ReconcileResult | None,
        outcomes: Sequence[Any] = (),
        *,
        interval: float | None = None,
        observed_at: float | None = None,
    ) -> None:
        self._metrics.report_policy(
            ref, status, interval_seconds=interval, observed_at=observed_at
        )  # metrics
        if result is not None:
            outcomes = result.outcomes
            if result.drift_detected:
                self._metrics.drift_detected(ref, result.drift_detected)  # metrics
        for outcome in outcomes:
            self._metrics.track_written(  # metrics
                outcome.write.purpose.value, "ok" if outcome.ok else outcome.error.code
            )


def _uid(body: Mapping[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("uid") or "")


def _spec_or_none(state: PolicyState) -> PolicySpec | None:
    try:
        return parse_policy_spec(state.spec)
    except InvalidSpec:
        return None


def _uuids_of(state: PolicyState) -> set[str]:
    """What a policy selects plus what its status still lists (VMs awaiting a restore)."""
    return set(state.spec.get("vmUuids") or ()) | {
        str(e.get("uuid")) for e in state.status.get("vms") or () if isinstance(e, Mapping)
    }
