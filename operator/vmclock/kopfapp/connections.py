"""ZStackConnection checks and the per-connection resync loop (a kopf daemon).

Why a daemon per connection rather than a timer per policy or a loop started at operator start-up:
- timers/daemons put kopf's finalizer on every object they match; on policies that would break "an Orphan
  policy deletes while the operator is down". The finalizer sits on the connection instead: deleting a
  ZStackConnection needs the operator running (or `kubectl patch ... -p '{"metadata":{"finalizers":[]}}'`);
- kopf stops daemons when the operator is paused by peering, so a standby replica never resyncs or writes;
  a loop started from `on.startup` would keep running there;
- the loop is where a connection's health and its policies meet: it re-checks the connection every resync
  interval (sooner, with backoff, while it is broken, so a Secret created later is picked up within a
  minute without watching every Secret in the cluster), and kicks the connection's policies when it turns
  ready or broken, so waiting policies recover by themselves.

The loop never awaits ZStack itself: checks and policy reconciles run as tasks, so its heartbeat (liveness)
only stops when the operator is really wedged.
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

from vmclock.connections import ConnectionManager, ConnectionVerdict, parse_connection_spec
from vmclock.connections.spec import resync_interval
from vmclock.connections.status import connection_status, was_ready
from vmclock.engine.spec import CONNECTION_PLURAL
from vmclock.kopfapp.claims import IndexedPolicy, PolicyIndex, all_entries, of_connection
from vmclock.kopfapp.liveness import Heartbeats
from vmclock.kopfapp.metrics import Metrics
from vmclock.kopfapp.policies import PolicyWorker, utcnow
from vmclock.kopfapp.scheduler import ResyncScheduler
from vmclock.kopfapp.statuswrite import write_status
from vmclock.kubeapi import KubeApi

log = logging.getLogger(__name__)

Key = tuple[str, str]
TICK_SECONDS = 1.0
BROKEN_RECHECK_FIRST = 2.0
BROKEN_RECHECK_MAX = 60.0
PARALLEL_RECONCILES = 8
DRAIN_SECONDS = 10.0


class ConnectionWorker:
    def __init__(
        self,
        kube: KubeApi,
        manager: ConnectionManager,
        policies: PolicyWorker,
        scheduler: ResyncScheduler,
        metrics: Metrics,
        *,
        heartbeats: Heartbeats,
        now: Callable[[], datetime] = utcnow,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._manager = manager
        self._policies = policies
        self._scheduler = scheduler
        self._metrics = metrics
        self._heartbeats = heartbeats
        self._now = now
        self._clock = clock
        self._next_check: dict[Key, float] = {}
        self._failures: dict[Key, int] = {}
        self._locks: dict[Key, asyncio.Lock] = {}

    async def check(self, body: Mapping[str, Any], index: PolicyIndex) -> ConnectionVerdict:
        """Check the connection, write its status if it changed, and wake its policies on a flip."""
        meta = body.get("metadata") or {}
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        key = (namespace, name)
        spec = parse_connection_spec(body.get("spec") or {})
        async with self._locks.setdefault(key, asyncio.Lock()):
            try:
                verdict = await self._manager.check(namespace, name, body.get("spec") or {})
            except Exception:
                # e.g. the Secret read failed with a Kubernetes API error: count it as a failed check and
                # back off, or the daemon's 1 s tick would start the next check right away.
                self._plan_next_check(key, ready=False, interval=spec.resync_interval_seconds)
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
            await write_status(self._kube, CONNECTION_PLURAL, key, stored, wanted)
            self._metrics.report_connection(key, verdict.reason)
            self._plan_next_check(key, ready=verdict.ready, interval=spec.resync_interval_seconds)
            if was_ready(stored) != verdict.ready or stored.get("observedGeneration") != generation:
                for entry in of_connection(index, namespace, name):
                    self._scheduler.kick(entry.key, key)
        if not verdict.ready:
            log.warning(
                "ZStackConnection %s/%s not ready (%s): %s", namespace, name, verdict.reason, verdict.message
            )
        return verdict

    def _plan_next_check(self, key: Key, *, ready: bool, interval: float) -> None:
        if ready:
            self._failures.pop(key, None)
            delay = interval
        else:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
            delay = min(interval, BROKEN_RECHECK_MAX, BROKEN_RECHECK_FIRST * 2**failures)
        self._next_check[key] = self._clock() + delay

    def _check_due(self, key: Key) -> bool:
        return self._clock() >= self._next_check.get(key, 0.0)

    async def run(
        self,
        body: kopf.Body,
        index: PolicyIndex,
        stopped: kopf.DaemonStopped,
    ) -> None:
        """The daemon body; `body` and `index` are kopf's live views, refreshed as events arrive."""
        key = (str(body.metadata.namespace), str(body.metadata.name))
        wake = self._scheduler.wakeup(key)
        tasks: dict[Any, asyncio.Task[Any]] = {}
        try:
            while not stopped:
                self._heartbeats.beat(key)
                self._start_due_work(key, body, index, tasks)
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), TICK_SECONDS)
        finally:
            await self._drain(tasks)
            self._heartbeats.forget(key)
            self._scheduler.forget_connection(key)
            if stopped.reason is not None and stopped.reason & kopf.DaemonStoppingReason.RESOURCE_DELETED:
                await self._connection_gone(key, index)

    def _start_due_work(
        self, key: Key, body: kopf.Body, index: PolicyIndex, tasks: dict[Any, asyncio.Task[Any]]
    ) -> None:
        for done in [k for k, task in tasks.items() if task.done()]:
            task = tasks.pop(done)
            if not task.cancelled() and task.exception() is not None:
                log.error("resync of %s failed: %r", done, task.exception())
        if "check" not in tasks and self._check_due(key):
            tasks["check"] = asyncio.create_task(self.check(dict(body), index))
        connection = parse_connection_spec(body.spec)
        peers: list[IndexedPolicy] | None = None
        for entry in of_connection(index, *key):
            if len(tasks) >= PARALLEL_RECONCILES:
                break
            interval = resync_interval(entry.resync_seconds, connection)
            if entry.key not in tasks and self._scheduler.is_due(entry.key, interval):
                if peers is None:  # one snapshot per tick, taken only when something is due
                    peers = list(all_entries(index))
                tasks[entry.key] = asyncio.create_task(
                    self._policies.reconcile(entry.key, peers, from_resync=True)
                )

    @staticmethod
    async def _drain(tasks: Mapping[Any, asyncio.Task[Any]]) -> None:
        """Give running work a moment (a half-done status write is worse than a late stop), then cancel."""
        pending = [t for t in tasks.values() if not t.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=DRAIN_SECONDS)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def _connection_gone(self, key: Key, index: PolicyIndex) -> None:
        """The connection was deleted: close its client and let its policies say so right away."""
        await self._manager.forget(*key)
        self._metrics.forget_connection(key)
        self._next_check.pop(key, None)
        self._failures.pop(key, None)
        self._locks.pop(key, None)
        peers = list(all_entries(index))
        for entry in of_connection(index, *key):
            await self._policies.reconcile(entry.key, peers, from_resync=True)
