"""ZStackConnection checks and the per-connection loop (a kopf daemon).

Why a daemon per connection rather than a timer per policy or a loop started at operator start-up:
- timers/daemons put kopf's finalizer on every object they match; on policies that would break "an Orphan
  policy deletes while the operator is down". The finalizer sits on the connection instead: deleting a
  ZStackConnection needs the operator running (or `kubectl patch ... -p '{"metadata":{"finalizers":[]}}'`);
- kopf stops daemons when the operator is paused by peering, so a standby replica never starts resync rounds;
- the loop is where a connection's health and its policies meet: it re-checks the connection every resync
  interval (sooner, with backoff, while it is broken, so a Secret created later is picked up within a
  minute without watching every Secret in the cluster), starts the resync rounds of its policies, and on a
  flip to ready or broken queues them all, so waiting policies recover by themselves.

The loop never awaits ZStack itself and never reconciles: checks run as tasks and reconciles go through the
controller's work queue, so its heartbeat (liveness) only stops when the operator is really wedged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import kopf

from vmclock.backoff import Backoff, FailureCounter
from vmclock.connections import ConnectionManager, ConnectionVerdict, parse_connection_spec
from vmclock.connections.status import connection_status, was_ready
from vmclock.engine import EventSpec
from vmclock.engine.spec import CONNECTION_PLURAL
from vmclock.kopfapp.controller import PolicyController, post_events, utcnow
from vmclock.kopfapp.liveness import Heartbeats
from vmclock.kopfapp.metrics import Metrics
from vmclock.kopfapp.statuswrite import write_status
from vmclock.kubeapi import KubeApi
from vmclock.refs import Ref

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
RECHECK_BACKOFF = Backoff(base=2.0, cap=60.0, floor=1.0)
DELETION_RETRY_SECONDS = 10.0


class ConnectionWorker:
    def __init__(
        self,
        kube: KubeApi,
        manager: ConnectionManager,
        controller: PolicyController,
        metrics: Metrics,
        *,
        heartbeats: Heartbeats,
        now: Callable[[], datetime] = utcnow,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._manager = manager
        self._controller = controller
        self._metrics = metrics
        self._heartbeats = heartbeats
        self._now = now
        self._clock = clock
        self._next_check: dict[Ref, float] = {}
        self._failures = FailureCounter(RECHECK_BACKOFF)
        self._locks: dict[Ref, asyncio.Lock] = {}
        self._holding: set[Ref] = set()

    async def check(self, body: Mapping[str, Any]) -> ConnectionVerdict:
        """Check the connection, write its status if it changed, and wake its policies on a flip."""
        meta = body.get("metadata") or {}
        ref = Ref.of(body)
        spec = parse_connection_spec(body.get("spec") or {})
        async with self._locks.setdefault(ref, asyncio.Lock()):
            try:
                verdict = await self._manager.check(*ref, body.get("spec") or {})
            except Exception:
                # e.g. the Secret read failed with a Kubernetes API error: count it as a failed check and
                # back off, or the daemon's 1 s tick would start the next check right away.
                self._plan_next_check(ref, ready=False, interval=spec.resync_interval_seconds)
                raise
            stored: Mapping[str, Any] = body.get("status") or {}
            generation = int(meta.get("generation") or 0)
            wanted = connection_status(
                stored,
                verdict,
                generation=generation,
                now=self._now(),
                refresh_seconds=spec.resync_interval_seconds,
            )
            await write_status(self._kube, CONNECTION_PLURAL, ref, stored, wanted, uid=meta.get("uid"))
            self._metrics.report_connection(ref, verdict.reason)
            self._plan_next_check(ref, ready=verdict.ready, interval=spec.resync_interval_seconds)
            if was_ready(stored) != verdict.ready or stored.get("observedGeneration") != generation:
                self._controller.kick_connection(ref)
        if not verdict.ready:
            log.warning("ZStackConnection %s not ready (%s): %s", ref, verdict.reason, verdict.message)
        return verdict

    def _plan_next_check(self, ref: Ref, *, ready: bool, interval: float) -> None:
        if ready:
            self._failures.forget(ref)
            delay = float(interval)
        else:
            delay = min(float(interval), self._failures.next_delay(ref))
        self._next_check[ref] = self._clock() + delay

    def _check_due(self, ref: Ref) -> bool:
        return self._clock() >= self._next_check.get(ref, 0.0)

    async def run(self, body: kopf.Body, stopped: kopf.DaemonStopped) -> None:
        """The daemon body; `body` is kopf's live view, refreshed as events arrive."""
        ref = Ref.of(body)
        check: asyncio.Task[ConnectionVerdict] | None = None
        self._controller.queue.resume()  # kopf runs daemons only while this replica is active
        try:
            while not stopped:
                self._heartbeats.beat(ref)
                if check is not None and check.done():
                    if not check.cancelled() and check.exception() is not None:
                        log.error("check of ZStackConnection %s failed: %r", ref, check.exception())
                    check = None
                if check is None and self._check_due(ref):
                    check = asyncio.create_task(self.check(dict(body)))
                self._controller.start_round(ref, parse_connection_spec(body.spec))
                await stopped.wait(TICK_SECONDS)
        finally:
            if stopped.reason is not None and stopped.reason & kopf.DaemonStoppingReason.OPERATOR_PAUSING:
                # Peering made this replica a standby: its backoff wake-ups and requests may still queue
                # policies, but none is reconciled (written to ZStack) until kopf resumes it.
                self._controller.queue.pause()
            self._heartbeats.forget(ref)
            if check is not None and not check.done():
                check.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await check

    async def release(self, body: kopf.Body) -> None:
        """Deletion of a connection: wait while Restore policies may still need it, then forget it."""
        ref = Ref.of(body)
        users = self._controller.restore_users(ref)
        if users:
            names = ", ".join(sorted(e.ref.name for e in users))
            message = (
                f"deletion waits for {len(users)} VmClockPolicies with deletionPolicy Restore that may need "
                f"this connection to put VMs back: {names}"
            )
            if ref not in self._holding:
                self._holding.add(ref)
                post_events(body, [EventSpec("Warning", "DeletionWaiting", message)])
            raise kopf.TemporaryError(message, delay=DELETION_RETRY_SECONDS)
        self._holding.discard(ref)
        await self._manager.forget(*ref)
        self._metrics.forget_connection(ref)
        self._next_check.pop(ref, None)
        self._failures.forget(ref)
        self._locks.pop(ref, None)
        self._controller.forget_connection(ref)
        self._controller.kick_connection(ref)
