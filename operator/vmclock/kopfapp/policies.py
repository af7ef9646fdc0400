"""Policy reconciles as the kopf layer runs them: lock, mark, reconcile, write, post, measure, schedule.

Both entry paths use this: kopf handlers (create/resume/spec change/trigger annotations) and the resync
loops (drift checks, kicks). A per-policy lock makes sure the two never interleave on one policy, so every
reconcile starts from the status the previous one wrote.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import kopf

from vmclock.connections import ConnectionManager
from vmclock.connections.spec import ConnectionSpec, parse_connection_spec, resync_interval
from vmclock.engine import (
    ClockTrackClient,
    ConnectionUnavailable,
    EventSpec,
    PolicyState,
    needs_reconciling_mark,
    overlapping,
    reconcile,
    reconciling_status,
    restore_all,
)
from vmclock.engine.spec import CONNECTION_PLURAL, POLICY_PLURAL, InvalidSpec, parse_policy_spec
from vmclock.kopfapp.claims import IndexedPolicy
from vmclock.kopfapp.metrics import Metrics
from vmclock.kopfapp.scheduler import ResyncScheduler
from vmclock.kopfapp.statuswrite import write_status
from vmclock.kubeapi import KubeApi

Key = tuple[str, str]
RESTORE_RETRY_SECONDS = 15.0
log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def as_body(body: Mapping[str, Any]) -> kopf.Body:
    return body if isinstance(body, kopf.Body) else kopf.Body(cast(kopf.RawBody, dict(body)))


def _resync_override(state: PolicyState) -> int | None:
    """The policy's own resyncIntervalSeconds, parsed; an invalid spec has none (and says so in status)."""
    try:
        return parse_policy_spec(state.spec).resync_interval_seconds
    except InvalidSpec:
        return None


def post_events(body: Mapping[str, Any], events: Sequence[EventSpec]) -> None:
    for event in events:
        kopf.event(as_body(body), type=event.type, reason=event.reason, message=event.message)


class PolicyWorker:
    def __init__(
        self,
        kube: KubeApi,
        connections: ConnectionManager,
        scheduler: ResyncScheduler,
        metrics: Metrics,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self._kube = kube
        self._connections = connections
        self._scheduler = scheduler
        self._metrics = metrics
        self._now = now
        self._locks: dict[Key, asyncio.Lock] = {}

    def _lock(self, key: Key) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def _connection_spec(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        body = await self._kube.read_object(CONNECTION_PLURAL, namespace, name)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            return None
        spec: Mapping[str, Any] = body.get("spec") or {}
        return spec

    async def reconcile(self, key: Key, peers: Sequence[IndexedPolicy], *, from_resync: bool = False) -> None:
        """Reconcile one policy now (callers: handlers and the resync loops).

        The body is read fresh from the API server *inside* the policy's lock: a body carried by a watch
        event, or read before waiting for the lock, may predate the status the previous reconcile wrote, and
        reconciling from it would lose what that status remembered (previousTrack, lastAppliedTime).
        """
        async with self._lock(key):
            override: int | None = None
            try:
                body = await self._kube.read_object(POLICY_PLURAL, *key)
                if body is None:
                    self.forget(key)
                    return
                state = PolicyState.from_body(body)
                override = _resync_override(state)
                if state.deleting or (from_resync and needs_reconciling_mark(state)):
                    # Deletion is the finalizer's business, a new generation kopf's handler's (both already
                    # queued); look again soon, not on every tick of the resync loop.
                    self._scheduler.record(key, resync_interval(override, None), retry_soon=True)
                    return
                await self._reconcile_locked(state, body, peers, override)
            except Exception:
                # Without a recorded next look the policy stays due and the resync loop, which ticks every
                # second, would start it again right away, hammering the API server; back off instead.
                self._scheduler.record(key, resync_interval(override, None), retry_soon=True)
                raise

    async def _reconcile_locked(
        self,
        state: PolicyState,
        body: Mapping[str, Any],
        peers: Sequence[IndexedPolicy],
        override: int | None,
    ) -> None:
        stored: Mapping[str, Any] = state.status
        stored_conditions = None
        new_generation = needs_reconciling_mark(state)
        if new_generation:
            marked = reconciling_status(state, self._now())
            await write_status(self._kube, POLICY_PLURAL, state.ref, stored, marked)
            stored, stored_conditions = marked, marked["conditions"]
        connection_spec: ConnectionSpec | None = None

        async def connect(connection: str) -> ClockTrackClient:
            nonlocal connection_spec
            spec = await self._connection_spec(state.namespace, connection)
            connection_spec = parse_connection_spec(spec) if spec is not None else None
            return await self._connections.client_for(state.namespace, connection, spec)

        others = [p.claim for p in peers if p.claim is not None and p.key != state.ref]
        result = await reconcile(state, connect, others, self._now(), stored_conditions)
        await write_status(self._kube, POLICY_PLURAL, state.ref, stored, result.status)
        post_events(body, result.events)
        self._measure(state.ref, result.status, result.drift_detected, result.outcomes)
        interval = resync_interval(override, connection_spec)
        self._scheduler.record(state.ref, interval, retry_soon=result.retry_soon)
        if new_generation:
            self._kick_overlapping(state, peers)
        summary = result.status.get("summary") or {}
        log.info(
            "VmClockPolicy %s/%s generation %s: %s writes, %s",
            state.namespace,
            state.name,
            state.generation,
            len(result.outcomes),
            {k: v for k, v in summary.items() if v},
        )

    def _measure(self, key: Key, status: Mapping[str, Any], drift: int, outcomes: Sequence[Any]) -> None:
        self._metrics.report_policy(key, status)
        if drift:
            self._metrics.drift.inc(drift)
        for outcome in outcomes:
            self._metrics.writes.labels(
                outcome.write.purpose.value, "ok" if outcome.ok else outcome.error.code
            ).inc()

    def _kick_overlapping(self, state: PolicyState, peers: Sequence[IndexedPolicy]) -> None:
        """Ownership of shared VMs may have changed: let the other policies re-evaluate now."""
        uuids = set(state.spec.get("vmUuids") or ()) | {
            str(e.get("uuid")) for e in state.status.get("vms") or () if isinstance(e, Mapping)
        }
        self.kick_sharing(uuids, state.ref, peers)

    def kick_sharing(self, uuids: set[str], me: Key, peers: Sequence[IndexedPolicy]) -> None:
        claims = {p.key: p for p in peers if p.claim is not None}
        for claim in overlapping(uuids, me, [p.claim for p in claims.values() if p.claim is not None]):
            peer = claims[(claim.namespace, claim.name)]
            self._scheduler.kick(peer.key, (peer.namespace, peer.connection))

    async def restore(self, body: Mapping[str, Any], peers: Sequence[IndexedPolicy]) -> None:
        """Deletion of a Restore policy. Retryable trouble raises kopf.TemporaryError (kopf retries until the
        handler's timeout, then lets the deletion finish); a paused policy restores nothing.

        Like `reconcile`, it works from the object as read *inside* the policy's lock: kopf's event body may
        predate a resync that recorded another previousTrack, and restoring from it would put back the
        wrong track or miss a VM. The event body is the fallback only when the object is already gone."""
        ref = PolicyState.from_body(body).ref
        async with self._lock(ref):
            fresh = await self._kube.read_object(POLICY_PLURAL, *ref)
            state = PolicyState.from_body(fresh if fresh is not None else body)
            try:
                spec = parse_policy_spec(state.spec)
            except InvalidSpec:
                return
            if not spec.restore:
                return
            if state.paused:
                message = "deleted while paused: VMs keep their current track"
                kopf.info(as_body(body), reason="Paused", message=message)
                return
            try:
                connection = await self._connection_spec(state.namespace, spec.connection_name)
                client = await self._connections.client_for(state.namespace, spec.connection_name, connection)
            except ConnectionUnavailable as problem:
                raise kopf.TemporaryError(
                    f"cannot restore yet: {problem}", delay=RESTORE_RETRY_SECONDS
                ) from None
            others = [p.claim for p in peers if p.claim is not None and p.key != state.ref]
            result = await restore_all(state, client, others)
        post_events(body, result.events)
        self._measure(state.ref, state.status, 0, result.outcomes)
        if result.retryable_left:
            raise kopf.TemporaryError(
                f"{len(result.retryable_left)} VMs not restored yet", delay=RESTORE_RETRY_SECONDS
            )
        restored = sum(1 for o in result.outcomes if o.ok)
        log.info("VmClockPolicy %s/%s deleted: restored %s VMs", state.namespace, state.name, restored)

    def forget(self, key: Key) -> None:
        self._locks.pop(key, None)
        self._scheduler.forget(key)
        self._metrics.forget_policy(key)
