"""The policy controller: one fair work queue, a pool of workers, one runtime per policy (design.md §5).

Every entry path only enqueues a policy's Ref: kopf's handlers (first sight, a new generation, a trigger
annotation: triggers.py; deletion), the connection's resync rounds, its turning ready or broken, and a policy
going away that shared VMs with others. Workers take Refs from the queue, which guarantees one reconcile per
policy at a time, never loses a request (it runs again right after), backs off per policy on failure, and
shares the workers fairly across connections.

A worker always starts from the object as the API server has it now, binds it to the runtime of that
incarnation (uid: `runtimes.py`), and writes status only onto that incarnation as it last saw it (uid and
resourceVersion tested), so neither a reconcile of a deleted policy nor an overtaken write of its own can
land over something newer. Each reconcile runs under one deadline: the ZStack part ends at
`reconcile_seconds` (what is not done stays Pending under its recorded intent), and everything, Kubernetes
calls included, is cancelled `GRACE_SECONDS` later at the latest. Kubernetes answers are typed
(kubeapi.py): Gone and Stale look again at once; Rejected is reported and backs off.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

import kopf

from vmclock.connections import ConnectionManager, parse_connection_spec
from vmclock.connections.manager import management_node
from vmclock.connections.spec import ConnectionSpec, resync_interval
from vmclock.engine import (
    ClockTrackClient,
    ConnectionUnavailable,
    EventSpec,
    Others,
    PolicyClaim,
    PolicyState,
    needs_reconciling_mark,
    overlapping,
    reconcile,
    reconciling_status,
    restore_all,
)
from vmclock.engine.external import SharedObserver
from vmclock.engine.plan import VmReading, WriteOutcome, owned_by_others
from vmclock.engine.reconcile import ReconcileIO, ReconcileResult, failed_status, restore_pending_status
from vmclock.engine.report import PAUSED_REASON, READY, SYNCED, condition_reason, find_condition
from vmclock.engine.spec import (
    DEFAULT_CONNECTION,
    POLICY_PLURAL,
    InvalidSpec,
    PolicySpec,
    parse_policy_spec,
)
from vmclock.kopfapp.claims import (
    ClaimsByVm,
    ClaimsUnknown,
    IndexedPolicy,
    PolicyIndex,
    index_entry,
    of_connection,
)
from vmclock.kopfapp.connectionindex import ConnectionIndex, IndexedConnection
from vmclock.kopfapp.connectionsource import ConnectionSource, FoundConnection
from vmclock.kopfapp.metrics import Metrics
from vmclock.kopfapp.records import ConfigMapRecord, RecordUnusable, delete_record
from vmclock.kopfapp.rolling import RolloutContext, roll_slice, with_rollout
from vmclock.kopfapp.runtimes import PolicyRuntime, Runtimes
from vmclock.kopfapp.statuswrite import status_patch
from vmclock.kopfapp.triggers import Triggers
from vmclock.kubeapi import Gone, KubeApi, Rejected, Stale
from vmclock.refs import Ref
from vmclock.workqueue import DEFAULT_BACKOFF, ShutDown, WorkQueue

log = logging.getLogger(__name__)

WORKERS = 64  # coroutines: cheap; what a management node gets is bounded per connection, not here
PER_CONNECTION = 32  # workers one connection may hold at most (fewer while many connections are busy);
# small policies spend most of a reconcile waiting on a job, so a connection with 1,000 of them needs many
# at once to keep its request slots busy; half the workers stay free for the other connections
RECONCILE_SECONDS = 120.0  # one reconcile's time for ZStack: reads, submissions, job waits (design §5.10)
GRACE_SECONDS = 30.0  # after it: the final status and Events, then everything is cancelled
STATUS_ATTEMPTS = 3  # a status write that found the object changed (an edit, a finalizer) re-reads, retries
DRAIN_SECONDS = 10.0
STARTUP_JOIN_SECONDS = 30.0  # a policy resumed within this of its connection's start-up round joins it
RESTORE_PENDING_EVENT = "RestorePending"
SUCCESS, ERROR, REQUEUE = "success", "error", "requeue"  # controller-runtime's reconcile results
STATUS_REJECTED = "StatusRejected"


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def as_body(body: Mapping[str, Any]) -> kopf.Body:
    return body if isinstance(body, kopf.Body) else kopf.Body(cast(kopf.RawBody, dict(body)))


def post_events(body: Mapping[str, Any], events: Sequence[EventSpec]) -> None:
    for event in events:
        kopf.event(as_body(body), type=event.type, reason=event.reason, message=event.message)


class StatusSink:
    """Status writes of one reconcile onto one incarnation as last seen, sending only what changed.

    Each write tests the uid and the resourceVersion it last saw (its own previous write's, or the read's).
    When the object changed meanwhile (a user's edit, kopf's finalizer on a Restore policy) the sink
    re-reads and writes again: it is the only writer of this status while its worker holds the key, and
    the re-read includes whatever an overtaken write of its own may have left, so the newest status wins."""

    def __init__(self, kube: KubeApi, runtime: PolicyRuntime, stored: Mapping[str, Any]) -> None:
        self._kube, self._runtime = kube, runtime
        self.stored: dict[str, Any] = dict(stored)
        self.void = False  # the object was deleted or replaced: nothing more may be written for it

    async def save(self, wanted: Mapping[str, Any]) -> None:
        ref, rt = self._runtime.ref, self._runtime
        for attempt in range(STATUS_ATTEMPTS):
            if not status_patch(self.stored, wanted):
                return
            try:
                written = await self._kube.write_status(
                    POLICY_PLURAL, *ref, wanted, uid=rt.uid, resource_version=rt.resource_version
                )
            except Gone:
                self.void = True
                raise
            except Stale as stale:
                if attempt + 1 == STATUS_ATTEMPTS:
                    raise
                await self._reread(stale.current)
                continue
            rt.resource_version = written.resource_version
            self.stored = dict(wanted)
            rt.saw_status(self.stored)
            return

    async def _reread(self, body: Mapping[str, Any] | None) -> None:
        """The object as the failed write's own re-read found it (one GET, not two), else read now."""
        if body is None:
            body = await self._kube.read_object(POLICY_PLURAL, *self._runtime.ref)
        meta = (body or {}).get("metadata") or {}
        if body is None or meta.get("uid") != self._runtime.uid:
            self.void = True
            raise Gone(404, "replaced", f"VmClockPolicy {self._runtime.ref}")
        self._runtime.resource_version = str(meta.get("resourceVersion") or "")
        self.stored = dict(body.get("status") or {})
        self._runtime.saw_status(self.stored)


class PolicyController:
    def __init__(
        self,
        kube: KubeApi,
        connections: ConnectionManager,
        metrics: Metrics,
        *,
        workers: int = WORKERS,
        per_connection: int = PER_CONNECTION,
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
        self.runtimes = Runtimes(clock, forgetting=self._forgetting)
        self.queue: WorkQueue[Ref] = WorkQueue(
            DEFAULT_BACKOFF,
            clock,
            workers=workers,
            flow_cap=per_connection,
            flow_of=self._flow_of,
            observer=metrics,
        )
        metrics.watch_queue(self.queue.depth, self.queue.running_since)
        metrics.set_workers(workers, self.queue.active)
        self._index: PolicyIndex | None = None
        self._connection_source = ConnectionSource(kube)
        self.claims = ClaimsByVm()  # fed by the registry's indexing handler and `deleted`
        self.triggers = Triggers()  # what each incarnation was last enqueued for (the registry's predicate)
        self._observers: dict[Ref, SharedObserver] = {}
        self._waiting: dict[Ref, set[Ref]] = {}  # an unresolved selector policy -> the policies waiting on it
        self._startups: dict[Ref, float] = {}  # connection -> when its start-up round began
        self._startup_join = STARTUP_JOIN_SECONDS
        self._tasks: list[asyncio.Task[None]] = []

    # --- entry points: they only enqueue -------------------------------------------------------------

    def bind(self, index: PolicyIndex, connections: ConnectionIndex) -> None:
        """kopf hands its live indexes to handlers and daemons only; remember them for the workers, and start
        them from here: a task inherits the context it is created in, and only inside handlers and daemons
        does kopf's context carry what `kopf.event` needs to post (at start-up it does not yet)."""
        self._index = index
        self._connection_source.bind(connections)
        if not self._tasks:
            self.start()

    def indexed(self, body: Mapping[str, Any]) -> dict[Ref, IndexedPolicy]:
        """kopf's indexing handler (every watch event of a policy but its deletion): the policy's entry in
        kopf's index, also kept in `claims` by VM for the ownership checks."""
        entries = index_entry(body)
        uid = str((body.get("metadata") or {}).get("uid") or "")
        for entry in entries.values():
            self.claims.put(uid, entry)
        return entries

    def enqueue(
        self,
        ref: Ref,
        *,
        uid: str = "",
        generation: int | None = None,
        connection: str | None = None,
        settled: bool = False,
    ) -> None:
        """Ask for a reconcile. With `uid` (a handler saw the object) the runtime of that incarnation
        learns its `generation`, which supersedes unsent writes of older generations, and its connection
        (the queue's fairness flow). `settled`: its status answers its generation (claims.settled); its
        first reconcile in this process then joins the connection's start-up round."""
        since = None
        if uid and settled and connection is not None and self.runtimes.fresh(ref, uid):
            since = self._startup_round(Ref(ref.namespace, connection))
        if uid:
            runtime = self.runtimes.bind(ref, uid)
            if generation is not None:
                if generation > runtime.generation > 0:
                    log.info(
                        "VmClockPolicy %s: generation %d seen; unsent writes of generation %d are dropped",
                        ref,
                        generation,
                        runtime.generation,
                    )
                runtime.saw_generation(generation)
            if connection is not None:
                runtime.connection = connection
        self.queue.add(ref, since=since)

    def _startup_round(self, connection: Ref) -> float:
        """When the connection's start-up round began; one begins now unless one began within
        `STARTUP_JOIN_SECONDS`.

        After a start kopf resumes every policy, one by one and in no useful order; each asking ZStack
        for its own VMs would cost a batch of reads per few policies. Instead the round hints the VMs of
        every settled policy of the connection that no worker has read yet to its observer at once, so
        the first batch reads all of them. A resumed policy asks about the world since the operator
        started, not since kopf got round to it, so a reading taken after the round began answers its
        request; only the drifted VMs then go on to writes."""
        now = self._clock()
        started = self._startups.get(connection)
        if started is not None and now - started <= self._startup_join:
            return started
        self._startups[connection] = now
        observer = self._observer(connection)
        for entry in self._entries_of(connection):
            if entry.settled and self.runtimes.fresh(entry.ref):
                observer.hint(entry.uuids)
        return now

    def kick_sharing(self, uuids: Iterable[str], me: Ref) -> None:
        """Ownership of shared VMs may have changed: the other policies selecting them look again now."""
        runtime = self.runtimes.get(me)
        shared = set(uuids) | (runtime.wanted if runtime is not None else frozenset())
        claims = [c for e in self.claims.touching(shared) if (c := self._claim(e)) is not None]
        for claim in overlapping(shared, me, claims):
            self.queue.add(Ref(claim.namespace, claim.name))

    def kick_connection(self, connection: Ref) -> None:
        """The connection turned ready or broken (or changed): every policy on it looks again now."""
        self._enqueue_round(connection, [e.ref for e in self._entries_of(connection)])

    def start_round(self, connection: Ref, spec: ConnectionSpec) -> None:
        """Called every tick of the connection's loop: queue the policies due for a drift check, together."""
        entries = self._entries_of(connection)
        due = self.runtimes.round((e.ref, resync_interval(e.resync_seconds, spec)) for e in entries)
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
            self.queue.add(ref, flow=connection)  # right after a start no runtime knows it yet

    def deleted(self, ref: Ref, uid: str) -> None:
        """kopf's DELETED event of incarnation `uid`: the object is gone, so its forward writes stop now (an
        Orphan policy has no finalizer: this is the only word of its deletion); the worker forgets it."""
        self.claims.drop(uid)
        self.triggers.forget(uid)
        runtime = self.runtimes.get(ref)
        if runtime is not None and runtime.uid == uid:
            runtime.deleting = True
        self.queue.add(ref)

    async def wait_restored(self, ref: Ref, uid: str, within: float) -> bool:
        """For the deletion handler of incarnation `uid`: True once its VMs are restored, or it needs that
        no more (it is gone). Marks the deletion at once, so a forward apply of it stops submitting, and
        always queues it: a request while it is being reconciled runs right after (design.md §5.1)."""
        current = self.runtimes.get(ref)
        if current is not None and current.uid != uid and current.confirmed:
            return True  # a worker has read another incarnation under the name: `uid` is gone
        runtime = self.runtimes.bind(ref, uid)
        runtime.deleting = True
        self.queue.add(ref)
        if not runtime.settled:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(runtime.wait_settled(), within)
        return runtime.settled

    def restore_problem(self, ref: Ref) -> str | None:
        runtime = self.runtimes.get(ref)
        return runtime.restore_problem if runtime is not None else None

    def restore_users(self, connection: Ref) -> list[IndexedPolicy]:
        """Restore policies on this connection: they may need it to put VMs back, so it must outlive them."""
        return [e for e in self._entries_of(connection) if e.restore]

    def forget_connection(self, connection: Ref) -> None:
        self._observers.pop(connection, None)
        self._startups.pop(connection, None)

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
            started, result = self._clock(), ERROR
            try:
                async with asyncio.timeout(self._reconcile_seconds + GRACE_SECONDS):
                    result = await self._process(ref)
            except (Gone, Stale):
                self.queue.add(ref)  # look again now: the object is gone (then forgotten), new, or changed
                result = REQUEUE
            except Exception:
                delay = self.queue.add_rate_limited(ref)
                log.exception("reconciling VmClockPolicy %s failed; retrying in %.1fs", ref, delay)
            finally:
                self._metrics.reconciled(result, self._clock() - started)
                self.queue.done(ref)

    async def _process(self, ref: Ref) -> str:
        """How the reconcile ended, in controller-runtime's words (for its metrics)."""
        started = self._clock()
        body = await self._kube.read_object(POLICY_PLURAL, *ref)
        if body is None:
            gone = self.runtimes.drop_gone(ref, read_started=started)
            if gone is not None:
                await self._forget(gone)
            return SUCCESS
        meta = body.get("metadata") or {}
        runtime = self.runtimes.bind(ref, str(meta.get("uid") or ""))
        first = not runtime.confirmed
        runtime.confirmed = True
        runtime.saw_generation(int(meta.get("generation") or 0))
        runtime.resource_version = str(meta.get("resourceVersion") or "")
        runtime.saw_status(body.get("status") or {})
        runtime.connection = _connection_name(body)
        state = PolicyState.from_body(body)
        try:
            if state.deleting:
                runtime.deleting = True
                return await self._finalize(runtime, body, state)
            return await self._reconcile(runtime, body, state, never_reconciled=first and not state.status)
        except Rejected as refused:
            await self._rejected(runtime, body, state, refused)
            return ERROR
        finally:
            runtime.status = None  # only this reconcile reads it; kept, it is a status per policy (issue 14)

    async def _forget(self, runtime: PolicyRuntime) -> None:
        """The policy is gone: its one runtime went already; what is left outside is its record (an Orphan
        policy has no finalizer, so its DELETED event lands here), its metrics and its backoff. Its
        watch-event memory (triggers.py) stays until its DELETED event: kopf may still hold events of that
        incarnation (our own last status write), which must not look like a first sight of a new policy."""
        self._metrics.forget_policy(runtime.ref)
        self.queue.forget(runtime.ref, gone=True)
        caches = (runtime.record, runtime.restarts)
        if any(cache is not None and cache.version is not None for cache in caches):
            await delete_record(self._kube, runtime.ref, owner_uid=runtime.uid)

    async def _rejected(
        self, runtime: PolicyRuntime, body: Mapping[str, Any], state: PolicyState, refused: Rejected
    ) -> None:
        """The API server refused what a reconcile wrote: a bug or a hostile reply, never retried in a hot
        loop. Say so where people look (a condition, a Warning Event when the cause is new) and back off."""
        delay = self.queue.add_rate_limited(runtime.ref)
        message = (
            f"the API server refused the status this reconcile computed ({refused}); "
            f"retrying with backoff (next in {delay:.0f}s)"
        )
        log.error("VmClockPolicy %s: %s", runtime.ref, message)
        before = find_condition(state.status.get("conditions"), READY) or {}
        if before.get("reason") != STATUS_REJECTED:
            post_events(body, [EventSpec("Warning", STATUS_REJECTED, message)])
        # From what is stored now (the intent and progress this reconcile wrote), not from what it read:
        # the VMs it wrote and their previous tracks stay listed.
        stored = runtime.status if runtime.status is not None else state.status
        try:
            await StatusSink(self._kube, runtime, stored).save(
                failed_status(replace(state, status=stored), STATUS_REJECTED, message, self._now())
            )
        except Rejected:
            log.exception("VmClockPolicy %s: even the condition saying so was refused", runtime.ref)

    # --- reconcile ---------------------------------------------------------------------------------------

    async def _reconcile(
        self, runtime: PolicyRuntime, body: Mapping[str, Any], state: PolicyState, *, never_reconciled: bool
    ) -> str:
        """`never_reconciled`: no process has reconciled this incarnation yet (this is its first reconcile
        here, and its status is empty): its record is taken for absent until checked (kopfapp/records.py)."""
        ref = runtime.ref
        asked = self.queue.requested_at(ref)
        observed_at = time.time()  # the observation below is made (or shared) from now on
        sink = StatusSink(self._kube, runtime, state.status)
        stored_conditions = None
        new_generation = needs_reconciling_mark(state)
        if new_generation:
            await sink.save(reconciling_status(state, self._now()))
            stored_conditions = sink.stored.get("conditions")
        spec = _spec_or_none(state)
        found = await self._find_connection(ref, spec)
        raw = found.spec(for_restore=False) if found is not None else None
        connection_spec = parse_connection_spec(raw) if raw is not None else None
        # The record is read once ZStack is reachable (the engine loads it after connecting): a namespace
        # whose connection cannot be used is told so first.
        record = ConfigMapRecord(self._kube, runtime, never_reconciled=never_reconciled)
        async with contextlib.AsyncExitStack() as leases:

            async def connect(name: str) -> ClockTrackClient:
                return await leases.enter_async_context(self._connections.lease(ref.namespace, name, raw))

            io = self._io(runtime, state, sink, spec, record, found=found, forward=True)
            try:
                others = self._others(ref, waits_as=state.claim())
                result = await reconcile(state, connect, others, self._now(), stored_conditions, io=io)
            except RecordUnusable as problem:
                await self._blocked(runtime, body, state, sink, reason=problem.reason, message=str(problem))
                return ERROR
            except ClaimsUnknown as waiting:
                return self._wait_for_selections(ref, waiting)
            except BaseException:
                self._written(ref, spec, self._uuids_of(runtime, state))  # what it wrote is not known
                raise
            self._written(ref, spec, _touched(result.outcomes, result.running))
        runtime.running |= result.running
        self._remember_selection(runtime, spec, result)
        await sink.save(result.status)
        post_events(body, result.events)
        context = RolloutContext(
            self._kube,
            self._connections,
            runtime.uid,
            raw,
            self._now,
            stop=self._rollout_stop(ref, asked, io),
            owned_elsewhere=functools.partial(self._owned_elsewhere, runtime, state, spec),
        )
        rollout = await roll_slice(context, state, spec, result, io)
        await sink.save(
            with_rollout(sink.stored, rollout.condition, generation=state.generation, now=self._now())
        )
        post_events(body, rollout.events)
        interval = resync_interval(spec.resync_interval_seconds if spec else None, connection_spec)
        observed = None if result.requeue_after_failure else observed_at
        self._measure(ref, result.status, result, interval=interval, observed_at=observed)
        self.runtimes.schedule(runtime, interval)
        outcome = self._requeue(runtime, state, result)
        if rollout.requeue_after is not None:
            self.queue.add_after(ref, rollout.requeue_after)  # the window's opening, or reboots still out
        if new_generation or state.paused != (condition_reason(state.status, SYNCED) == PAUSED_REASON):
            # a new spec, or a pause or resume (an annotation: no new generation) that gave its VMs away or
            # took them back (a paused policy's claim does not count, design.md §6.3)
            self.kick_sharing(self._uuids_of(runtime, state), ref)
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
        runtime: PolicyRuntime,
        state: PolicyState,
        sink: StatusSink,
        spec: PolicySpec | None,
        record: ConfigMapRecord,
        *,
        found: FoundConnection | None,
        forward: bool,
    ) -> ReconcileIO:
        """What the engine borrows for one reconcile; `forward`: it writes the policy's own track (a
        deletion stops that), rather than putting VMs back."""
        ref = runtime.ref
        since = self.queue.requested_at(ref)
        observer = self._observer(Ref(ref.namespace, spec.connection_name)) if spec else SharedObserver()

        async def read(client: ClockTrackClient, uuids: Sequence[str]) -> Any:
            return await observer.read(client, uuids, since)

        def stop_reason() -> str | None:
            if sink.void or self.runtimes.get(ref) is not runtime:
                return "the policy was deleted or replaced"
            if forward and runtime.deleting:
                return "not sent: the policy is being deleted"
            latest = runtime.superseded(state.generation)
            if latest is not None:
                return f"not sent: generation {latest} superseded generation {state.generation}"
            return None

        async def confirm_connection() -> None:
            if found is not None:
                await self._connection_source.confirm(found, forward=forward)

        return ReconcileIO(
            read=read,
            save=sink.save,
            stop_reason=stop_reason,
            confirm_connection=confirm_connection,
            record=record,
            deadline=asyncio.get_running_loop().time() + self._reconcile_seconds,
        )

    def _rollout_stop(self, ref: Ref, asked: float, io: ReconcileIO) -> Callable[[], str | None]:
        """The reconcile's stop gate, and one more reason for a rollout: the policy was asked for again
        (kopf's handlers only enqueue: a pause, a resume, another policy taking a VM over). Reboots not sent
        yet wait for the next reconcile, which decides with the policy as it is now."""

        def stop() -> str | None:
            if self.queue.requested_at(ref) > asked:
                return "not sent: the policy was asked for again; the next reconcile decides"
            return io.stop_reason()

        return stop

    def _owned_elsewhere(
        self, runtime: PolicyRuntime, state: PolicyState, spec: PolicySpec | None
    ) -> frozenset[str]:
        """This policy's VMs another policy takes precedence for now (design.md §3.7), whatever its track."""
        if spec is None:
            return frozenset()
        claim = state.claim_for(spec, runtime.selection)
        return owned_by_others(claim, self._others(runtime.ref)(claim.vm_uuids))

    def _requeue(self, runtime: PolicyRuntime, state: PolicyState, result: ReconcileResult) -> str:
        ref = runtime.ref
        superseded = runtime.superseded(state.generation) is not None or runtime.deleting
        if result.unsent and not superseded:
            # the time bound cut it short: carry on right away, nothing failed; what was read for it still
            # answers (a continuation is no new request)
            self.queue.add(ref, continuing=True)
            return REQUEUE
        if result.retry_soon or result.requeue_after_failure:
            self.queue.add_rate_limited(ref)
            return ERROR if result.requeue_after_failure else REQUEUE
        self.queue.forget(ref)
        return SUCCESS

    async def _blocked(
        self,
        runtime: PolicyRuntime,
        body: Mapping[str, Any],
        state: PolicyState,
        sink: StatusSink,
        *,
        reason: str,
        message: str,
    ) -> None:
        """A reconcile that may not go on: a condition, a Warning Event when the reason is new, backoff."""
        before = find_condition(state.status.get("conditions"), READY) or {}
        await sink.save(failed_status(state, reason, message, self._now()))
        if before.get("reason") != reason:
            post_events(body, [EventSpec("Warning", reason, message)])
        delay = self.queue.add_rate_limited(runtime.ref)
        log.warning("VmClockPolicy %s: %s: %s; trying again in %.1fs", runtime.ref, reason, message, delay)

    # --- deletion of a Restore policy -------------------------------------------------------------------

    async def _finalize(self, runtime: PolicyRuntime, body: Mapping[str, Any], state: PolicyState) -> str:
        """A deleting policy: restore its VMs if it is a Restore policy; a promise kept until done."""
        ref = runtime.ref
        spec = _spec_or_none(state)
        if spec is None or not spec.restore:
            runtime.finish_restore()  # nothing to put back (kopf drops the finalizer of Orphan policies)
            return SUCCESS
        if state.paused:
            message = "deleted while paused: VMs keep their current track"
            post_events(body, [EventSpec("Normal", "Paused", message)])
            runtime.finish_restore()
            return SUCCESS
        sink = StatusSink(self._kube, runtime, state.status)
        record = ConfigMapRecord(self._kube, runtime)
        try:
            await record.load()
        except RecordUnusable as problem:
            await self._restore_blocked(runtime, body, state, sink, f"{problem.reason}: {problem}")
            return ERROR
        # A connection that is being deleted is still a connection for restores: it waits for this policy.
        found = await self._find_connection(ref, spec)
        raw = found.spec(for_restore=True) if found is not None else None
        io = self._io(runtime, state, sink, spec, record, found=found, forward=False)
        try:
            async with contextlib.AsyncExitStack() as leases:
                lease = self._connections.lease(ref.namespace, spec.connection_name, raw, for_restore=True)
                async with asyncio.timeout_at(io.deadline):  # the connection's check is bounded too
                    client = await leases.enter_async_context(lease)
                # the node of the client the restore uses: its connection may no longer be Ready (§5.6)
                others = self._others(ref, waits_as=state.claim(), node=management_node(client.endpoint))
                try:
                    result = await restore_all(state, client, others, io, running=runtime.running)
                except ClaimsUnknown as waiting:
                    return self._wait_for_selections(ref, waiting)
                except BaseException:
                    self._written(ref, spec, self._uuids_of(runtime, state))  # what it wrote is not known
                    raise
                self._written(ref, spec, _touched(result.outcomes, result.running))
        except ConnectionUnavailable as problem:
            await self._restore_blocked(runtime, body, state, sink, f"cannot reach ZStack: {problem}")
            return ERROR
        except TimeoutError:
            await self._restore_blocked(
                runtime, body, state, sink, "checking the connection did not finish within the time bound"
            )
            return ERROR
        post_events(body, result.events)
        self._measure(ref, state.status, None, result.outcomes)
        if result.cut_short:
            self.queue.add(ref, continuing=True)  # only the slice ended (or a newer generation took over)
            return REQUEUE
        if not result.done:
            await self._restore_blocked(runtime, body, state, sink, result.why)
            return REQUEUE
        log.info("VmClockPolicy %s deleted: restored %s VMs", ref, sum(1 for o in result.outcomes if o.ok))
        await delete_record(self._kube, ref, owner_uid=runtime.uid)
        runtime.finish_restore()
        return SUCCESS

    async def _restore_blocked(
        self, runtime: PolicyRuntime, body: Mapping[str, Any], state: PolicyState, sink: StatusSink, why: str
    ) -> None:
        """Say why in a condition and a Warning Event (when the reason is new), then try again later."""
        runtime.restore_problem = why
        wanted = restore_pending_status(state, why, self._now())
        before = find_condition(state.status.get("conditions"), READY) or {}
        after = find_condition(wanted.get("conditions"), READY) or {}
        await sink.save(wanted)
        if before.get("message") != after.get("message"):
            post_events(body, [EventSpec("Warning", RESTORE_PENDING_EVENT, why)])
        delay = self.queue.add_rate_limited(runtime.ref)
        log.warning(
            "VmClockPolicy %s: restore not finished (%s); trying again in %.1fs", runtime.ref, why, delay
        )

    # --- helpers -------------------------------------------------------------------------------------------

    def _flow_of(self, ref: Ref) -> Ref:
        """The queue's fairness flow: the policy's connection (its management node, its tenant)."""
        runtime = self.runtimes.get(ref)
        return Ref(ref.namespace, runtime.connection if runtime is not None else "")

    def _written(self, ref: Ref, spec: PolicySpec | None, uuids: Iterable[str]) -> None:
        """After a reconcile wrote `uuids`: what was read of them before is stale now (the cache is per
        connection and shared, so another round must not reuse a pre-write reading). Only what was written:
        a slice cut while reading must leave the reading it paid for to the next slice."""
        if spec is not None:
            observer = self._observers.get(Ref(ref.namespace, spec.connection_name))
            if observer is not None:
                observer.invalidate(uuids)

    def _observer(self, connection: Ref) -> SharedObserver:
        observer = self._observers.get(connection)
        if observer is None:
            drifted_first = functools.partial(self._drifted_first, connection)
            observer = self._observers[connection] = SharedObserver(self._clock, on_read=drifted_first)
        return observer

    def _drifted_first(self, connection: Ref, readings: Mapping[str, VmReading]) -> None:
        """A batch was read: the connection's queued policies it found drifted go before the others. After
        a start, or in a resync round, most policies will find nothing to do; the few that must write
        should not wait behind all of them."""
        self.queue.promote(
            entry.ref
            for entry in self._entries_of(connection)
            if entry.claim is not None
            and any(
                (reading := readings.get(uuid)) is not None
                and reading.track is not None
                and reading.track != entry.claim.track
                for uuid in entry.uuids
            )
        )

    def _entries_of(self, connection: Ref) -> list[IndexedPolicy]:
        return of_connection(self._index, connection) if self._index is not None else []

    def _remember_selection(
        self, runtime: PolicyRuntime, spec: PolicySpec | None, result: ReconcileResult
    ) -> None:
        """Keep what a selector policy resolved to (a failed resolution keeps the last one); VMs that
        entered or left it may change who owns them, so the policies sharing those look again. A policy
        no longer using a selector forgets its selection: the policies sharing those VMs look again too,
        before the VMs are forgotten (status lists only some of them)."""
        if spec is None or spec.selector is None:
            forgotten = runtime.wanted
            runtime.selection, runtime.matched = None, frozenset()
            if forgotten:
                self.kick_sharing(forgotten, runtime.ref)
            return
        if result.selected is None:
            return
        before = runtime.wanted if runtime.selection is not None else None
        runtime.selection, runtime.matched = result.selected, result.matched
        changed = runtime.wanted if before is None else before ^ runtime.wanted
        if changed:
            self.kick_sharing(changed, runtime.ref)
        for waiter in self._waiting.pop(runtime.ref, ()):
            self.queue.add(waiter)

    def _wait_for_selections(self, ref: Ref, waiting: ClaimsUnknown) -> str:
        """`ClaimsUnknown`: queue the policies it waits for (kopf resumes them in no useful order) and look
        again as soon as each resolved, or after a backoff should one never resolve."""
        for blocker in waiting.waiting_for:
            self._waiting.setdefault(blocker, set()).add(ref)
            self.queue.add(blocker)
        delay = self.queue.add_rate_limited(ref)
        log.info(
            "VmClockPolicy %s: %s; trying again in %.1fs at the latest",
            ref,
            waiting.seen_by(ref.namespace),
            delay,
        )
        return REQUEUE

    def _forgetting(self, runtime: PolicyRuntime) -> None:
        """A runtime goes (another incarnation replaced it, or the policy was read gone): the policies
        sharing its selection look again now, while its VMs are still known; whoever waits on it goes on."""
        if runtime.wanted:
            self.kick_sharing(runtime.wanted, runtime.ref)
        for waiter in self._waiting.pop(runtime.ref, ()):
            self.queue.add(waiter)

    def _claim(self, entry: IndexedPolicy) -> PolicyClaim | None:
        """The entry's claim; a selector policy's with what it last resolved to (unknown: not backed)."""
        claim = entry.claim
        if claim is None:
            return claim
        runtime = self.runtimes.get(entry.ref)
        if not claim.by_selector:
            # what this process last wrote or read of its status: kopf's index lags behind our own writes
            return claim if runtime is None or runtime.found is None else replace(claim, found=runtime.found)
        if runtime is None or runtime.selection is None:
            return replace(claim, vm_uuids=frozenset(), found=None)
        return replace(claim, vm_uuids=runtime.selection, found=runtime.selection, matched=runtime.matched)

    def _uuids_of(self, runtime: PolicyRuntime, state: PolicyState) -> set[str]:
        """What a policy selects plus what its status still lists (VMs awaiting a restore)."""
        listed = {str(e.get("uuid")) for e in state.status.get("vms") or () if isinstance(e, Mapping)}
        return set(state.spec.get("vmUuids") or ()) | listed | runtime.wanted

    def _others(self, ref: Ref, *, waits_as: PolicyClaim | None = None, node: str | None = None) -> Others:
        """The claims that count against `ref` (design.md §6.3) on the VMs the engine asks about: backed
        ones (Enforce, not paused, VMs its own observation found) whose connection is Ready and reaches
        the same management node as ours (`node`: the one the caller's client reaches; else that of our
        connection, if Ready). A tenant cannot block another tenant's VMs by listing UUIDs it cannot see
        or act on. Found through `ClaimsByVm`: the cost follows the VMs, not the policies.

        `waits_as`: the policy as it is about to write or restore; `ClaimsUnknown` when selector policies
        whose selection could stop that are not resolved in this process yet (`_must_wait`)."""
        runtime = self.runtimes.get(ref)
        connection = Ref(ref.namespace, runtime.connection if runtime is not None else DEFAULT_CONNECTION)

        def touching(uuids: Collection[str]) -> list[PolicyClaim]:
            here = node if node is not None else self._connections.node(*connection)
            wanted = frozenset(uuids)
            if here is None or not wanted:
                return []
            nodes: dict[Ref, str | None] = {connection: here}
            claims, unresolved = [], []
            for entry in self.claims.touching(wanted):
                claim = self._claim(entry) if entry.ref != ref else None
                waits = (
                    waits_as is not None and claim is not None and self._must_wait(waits_as, wanted, claim)
                )
                if claim is None or not (waits or claim.wanted & wanted):
                    continue
                where = Ref(entry.ref.namespace, entry.connection)
                if where not in nodes:
                    nodes[where] = self._connections.node(*where)
                if nodes[where] != here:
                    continue
                backed = claim.backed()
                if waits:
                    unresolved.append(entry.ref)
                elif backed is not None:
                    claims.append(backed)
            if unresolved:
                raise ClaimsUnknown(unresolved)
            return claims

        return touching

    @staticmethod
    def _must_wait(me: PolicyClaim, asked: frozenset[str], other: PolicyClaim) -> bool:
        """`other` is a live selector policy that would count if this process knew its selection
        (`ClaimsUnknown`), and it could stop what `me` is about to do: restore a VM (a deletion, or a UUID
        policy's dropped VMs: any live policy's selection hands the VM over), or write one as a selector
        policy (only older selector policies own VMs against it; UUID policies never wait for one)."""
        unresolved = other.by_selector and other.found is None
        if not unresolved or not other.enforce or other.paused or other.deleting:
            return False  # a deleting one never resolves again: it only restores
        restoring = me.deleting or (not me.by_selector and not asked <= me.vm_uuids)
        return restoring or (me.by_selector and other.seniority < me.seniority)

    async def _find_connection(self, ref: Ref, spec: PolicySpec | None) -> FoundConnection | None:
        """The policy's connection as the watch delivered it, or from the API server when the watch has
        not told of it; confirmed before the reconcile writes ZStack (connectionsource.py)."""
        if spec is None:
            return None
        return await self._connection_source.find(Ref(ref.namespace, spec.connection_name))

    def connection_indexed(self, body: Mapping[str, Any]) -> dict[Ref, IndexedConnection]:
        """kopf's indexing handler for ZStackConnections."""
        return self._connection_source.indexed(body)

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
        self._metrics.report_policy(ref, status, interval_seconds=interval, observed_at=observed_at)
        if result is not None:
            outcomes = result.outcomes
            if result.drift_detected:
                self._metrics.drift_detected(ref, result.drift_detected)
        for outcome in outcomes:
            self._metrics.track_written(
                outcome.write.purpose.value, "ok" if outcome.ok else outcome.error.code
            )


def _touched(outcomes: Iterable[WriteOutcome], running: Iterable[str]) -> set[str]:
    """The VMs a reconcile wrote, or may still be writing (a job cut at its deadline)."""
    return {outcome.write.uuid for outcome in outcomes} | set(running)


def _connection_name(body: Mapping[str, Any]) -> str:
    spec = body.get("spec") or {}
    return str((spec.get("connectionRef") or {}).get("name") or DEFAULT_CONNECTION)


def _spec_or_none(state: PolicyState) -> PolicySpec | None:
    try:
        return parse_policy_spec(state.spec)
    except InvalidSpec:
        return None
