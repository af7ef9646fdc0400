"""Prometheus metrics, on their own port (kopf has none built in). Every family lives here, behind methods.

Gauges about objects (per policy: Ready, Synced, VMs by phase, pending restarts and the oldest one's age,
sync times, resync lag; per connection: Ready) are computed at scrape time from the last report each object
made, so a deleted object simply disappears instead of leaving a stale labelled series behind. The
controller's own queue and reconcile metrics use controller-runtime's names, labels and buckets, so dashboards
and alerts written for Go operators recognise them. ZStack calls are counted per attempt through the
client's `on_call` hook.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from vmclock.connections.problems import CONNECTED
from vmclock.engine.report import (
    PENDING_RESTART_SINCE,
    READY,
    SYNCED,
    find_condition,
    pending_restart_count,
)
from vmclock.engine.spec import parse_timestamp
from vmclock.refs import Ref
from vmclock.zstack.errors import metric_code
from vmclock.zstack.observe import OK

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CONTROLLER = "vmclockpolicy"  # controller-runtime names a controller (and its queue) after the lowercase kind
RECONCILE_RESULTS = ("success", "error", "requeue", "requeue_after")
# controller-runtime's buckets, so histogram_quantile over a fleet of controllers mixes like with like.
QUEUE_BUCKETS = tuple(10e-9 * 10**i for i in range(12))
RECONCILE_BUCKETS = (
    *(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    *(1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60),
)
POLICY_LABELS = ["namespace", "name"]
NOT_PHASES = frozenset({"total", "pendingRestart"})  # summary counts that are no phase (a VM has one phase)


@dataclass
class _PolicySeen:
    """What the last report of one policy said; times are wall-clock seconds (Unix time). `since` (the first
    report) stands in for the last observation until there is one: a policy never observed is late too."""

    since: float
    ready: str = "Unknown"
    synced: str = "Unknown"
    phases: Mapping[str, int] = field(default_factory=dict)
    pending_restart: int = 0
    waiting_since: float | None = None  # when the oldest pending restart began (Unix time)
    interval: float | None = None
    observed_at: float | None = None
    synced_at: float | None = None
    drifts: int = 0


def _gauge(name: str, documentation: str, labels: Sequence[str] = POLICY_LABELS) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=list(labels))


class _ObjectGauges(Collector):
    def __init__(self, wall: Callable[[], float]) -> None:
        self.policies: dict[Ref, _PolicySeen] = {}
        self.connections: dict[Ref, str] = {}
        self._wall = wall

    def seen(self, ref: Ref) -> _PolicySeen:
        if ref not in self.policies:
            self.policies[ref] = _PolicySeen(since=self._wall())
        return self.policies[ref]

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        # Scrapes run in the HTTP server's thread while the event loop changes the dicts: copy them first
        # (one C-level step each, so the GIL makes the copy consistent).
        policies, connections = sorted(self.policies.items()), sorted(self.connections.items())
        yield from self._fleet(policies, connections)
        yield from self._per_policy(policies)
        connection_ready = _gauge("vmclock_connection_ready", "1 when the ZStackConnection is Ready, else 0")
        for (namespace, name), reason in connections:
            connection_ready.add_metric([namespace, name], 1.0 if reason == CONNECTED else 0.0)
        yield connection_ready

    @staticmethod
    def _fleet(
        policies: Sequence[tuple[Ref, _PolicySeen]], connections: Sequence[tuple[Ref, str]]
    ) -> Iterator[GaugeMetricFamily]:
        by_condition = _gauge("vmclock_policies", "VmClockPolicies by condition", ["ready", "synced"])
        for (ready, synced), count in Tally((p.ready, p.synced) for _, p in policies).items():
            by_condition.add_metric([ready, synced], count)
        vms = _gauge("vmclock_vms", "Selected VMs by phase, over all policies", ["phase"])
        phases: Tally[str] = Tally()
        for _, seen in policies:
            phases.update(seen.phases)
        for phase, count in sorted(phases.items()):
            vms.add_metric([phase], count)
        by_reason = _gauge("vmclock_connections", "ZStackConnections by Ready reason", ["reason"])
        for reason, count in Tally(reason for _, reason in connections).items():
            by_reason.add_metric([reason], count)
        yield from (by_condition, vms, by_reason)

    def _per_policy(
        self, policies: Sequence[tuple[Ref, _PolicySeen]]
    ) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        ready = _gauge("vmclock_policy_ready", "1 when the policy's Ready condition is True, else 0")
        synced = _gauge("vmclock_policy_synced", "1 when the policy's Synced condition is True, else 0")
        vms = _gauge(
            "vmclock_policy_vms", "The policy's VMs by phase (status.summary)", [*POLICY_LABELS, "phase"]
        )
        restarts = _gauge(
            "vmclock_policy_pending_restart_vms",
            "Selected VMs (all, not only those listed in status) changed while running: restart pending",
        )
        oldest = _gauge(
            "vmclock_policy_oldest_pending_restart_seconds",
            "How long the VM waiting longest for a restart has waited; 0 when none waits",
        )
        interval = _gauge("vmclock_policy_resync_interval_seconds", "The policy's effective resync interval")
        observed = _gauge(
            "vmclock_policy_last_observation_timestamp_seconds",
            "When the observation the policy's status reflects was made (Unix time)",
        )
        synced_at = _gauge(
            "vmclock_policy_last_sync_success_timestamp_seconds",
            "When the last observation with Synced=True was made (Unix time)",
        )
        lag = _gauge(
            "vmclock_policy_resync_lag_seconds",
            "How overdue the next observation is: now - last observation (or first report) - interval",
        )
        drift = CounterMetricFamily(
            "vmclock_policy_drift_detected", "VMs of this policy found on another track", labels=POLICY_LABELS
        )
        now = self._wall()
        for ref, seen in policies:
            labels = [ref.namespace, ref.name]
            ready.add_metric(labels, 1.0 if seen.ready == "True" else 0.0)
            synced.add_metric(labels, 1.0 if seen.synced == "True" else 0.0)
            for phase, count in sorted(seen.phases.items()):
                vms.add_metric([*labels, phase], count)
            restarts.add_metric(labels, seen.pending_restart)
            oldest.add_metric(
                labels, 0.0 if seen.waiting_since is None else max(0.0, now - seen.waiting_since)
            )
            drift.add_metric(labels, seen.drifts)
            for family, value in (
                (interval, seen.interval),
                (observed, seen.observed_at),
                (synced_at, seen.synced_at),
            ):
                if value is not None:
                    family.add_metric(labels, value)
            if seen.interval is not None:
                last = seen.observed_at if seen.observed_at is not None else seen.since
                lag.add_metric(labels, max(0.0, now - last - seen.interval))
        yield from (ready, synced, vms, restarts, oldest, interval, observed, synced_at, lag, drift)


class _ControllerGauges(Collector):
    """controller-runtime's gauges, read from the queue and the worker pool when scraped."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.depth: Callable[[], int] | None = None
        self.running: Callable[[], Sequence[float]] | None = None
        self.max_workers: int | None = None
        self.active: Callable[[], int] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.depth is not None and self.running is not None:
            labels = [CONTROLLER, CONTROLLER]
            now = self._clock()
            ages = [max(0.0, now - started) for started in self.running()]
            for name, documentation, value in (
                ("workqueue_depth", "Current depth of workqueue", float(self.depth())),
                (
                    "workqueue_unfinished_work_seconds",
                    "How many seconds of work has been done that is in progress and hasn't been observed "
                    "by work_duration.",
                    sum(ages),
                ),
                (
                    "workqueue_longest_running_processor_seconds",
                    "How many seconds has the longest running processor for workqueue been running.",
                    max(ages, default=0.0),
                ),
            ):
                family = _gauge(name, documentation, ["controller", "name"])
                family.add_metric(labels, value)
                yield family
        if self.max_workers is not None and self.active is not None:
            for name, documentation, value in (
                (
                    "controller_runtime_max_concurrent_reconciles",
                    "Maximum number of concurrent reconciles per controller",
                    float(self.max_workers),
                ),
                (
                    "controller_runtime_active_workers",
                    "Number of currently used workers per controller",
                    float(self.active()),
                ),
            ):
                family = _gauge(name, documentation, ["controller"])
                family.add_metric([CONTROLLER], value)
                yield family


def _condition_status(status: Mapping[str, Any], kind: str) -> str:
    condition = find_condition(status.get("conditions"), kind)
    return str(condition.get("status", "Unknown")) if condition else "Unknown"


def _waiting_since(status: Mapping[str, Any]) -> float | None:
    since = status.get(PENDING_RESTART_SINCE)
    try:
        return parse_timestamp(since).timestamp() if isinstance(since, str) else None
    except ValueError:
        return None


class Metrics:
    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self._objects = _ObjectGauges(wall)
        self._controller = _ControllerGauges(clock)
        self.registry.register(self._objects)
        self.registry.register(self._controller)
        self._zstack_requests = Counter(
            "vmclock_zstack_requests",
            "ZStack API call attempts",
            ["operation", "code"],
            registry=self.registry,
        )
        self._zstack_seconds = Histogram(
            "vmclock_zstack_request_seconds",
            "ZStack API call latency",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._drift = Counter(
            "vmclock_drift_detected",
            "VMs found with another track than their policy wants",
            registry=self.registry,
        )
        self._writes = Counter(
            "vmclock_track_writes", "SetVmClockTrack outcomes", ["purpose", "result"], registry=self.registry
        )
        self._queue_metrics()
        self._reconcile_metrics()

    def _queue_metrics(self) -> None:
        labels = ["controller", "name"]

        def counter(name: str, documentation: str) -> Counter:
            return Counter(name, documentation, labels, registry=self.registry).labels(CONTROLLER, CONTROLLER)

        def histogram(name: str, documentation: str) -> Histogram:
            made = Histogram(name, documentation, labels, buckets=QUEUE_BUCKETS, registry=self.registry)
            return made.labels(CONTROLLER, CONTROLLER)

        self._adds = counter("workqueue_adds", "Total number of adds handled by workqueue")
        self._retries = counter("workqueue_retries", "Total number of retries handled by workqueue")
        self._queued = histogram(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested",
        )
        self._worked = histogram(
            "workqueue_work_duration_seconds", "How long in seconds processing an item from workqueue takes."
        )

    def _reconcile_metrics(self) -> None:
        total = Counter(
            "controller_runtime_reconcile",
            "Total number of reconciliations per controller",
            ["controller", "result"],
            registry=self.registry,
        )
        # controller-runtime starts every result at 0, so rate() and increase() see the first one.
        self._reconciles = {result: total.labels(CONTROLLER, result) for result in RECONCILE_RESULTS}
        self._reconcile_errors = Counter(
            "controller_runtime_reconcile_errors",
            "Total number of reconciliation errors per controller",
            ["controller"],
            registry=self.registry,
        ).labels(CONTROLLER)
        self._reconcile_seconds = Histogram(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            ["controller"],
            buckets=RECONCILE_BUCKETS,
            registry=self.registry,
        ).labels(CONTROLLER)

    # --- ZStack calls and writes -------------------------------------------------------------------------

    def on_call(self, operation: str, code: str, seconds: float) -> None:
        # Label values come from a closed set (design §6.6): an endpoint cannot mint series.
        self._zstack_requests.labels(operation, code if code == OK else metric_code(code)).inc()
        self._zstack_seconds.labels(operation).observe(seconds)

    def drift_detected(self, ref: Ref, vms: int) -> None:
        """`vms` VMs of the policy were found on another track than it wants."""
        self._drift.inc(vms)
        self._objects.seen(ref).drifts += vms

    def track_written(self, purpose: str, result: str) -> None:
        """One SetVmClockTrack outcome: `result` is `ok` or an error code, bounded to a closed set here."""
        self._writes.labels(purpose, result if result == "ok" else metric_code(result)).inc()

    # --- objects --------------------------------------------------------------------------------------------

    def report_policy(
        self,
        ref: Ref,
        status: Mapping[str, Any],
        *,
        interval_seconds: float | None,
        observed_at: float | None,
    ) -> None:
        """The policy's status as just written. `observed_at` (Unix time) is when the observation it reflects
        was made, None when this status reflects no new one; `interval_seconds` None keeps the last known."""
        seen = self._objects.seen(ref)
        summary = status.get("summary") or {}
        seen.ready = _condition_status(status, READY)
        seen.synced = _condition_status(status, SYNCED)
        seen.phases = {k: int(v) for k, v in summary.items() if k not in NOT_PHASES and isinstance(v, int)}
        seen.pending_restart = pending_restart_count(status)
        seen.waiting_since = _waiting_since(status)
        if interval_seconds is not None:
            seen.interval = float(interval_seconds)
        if observed_at is not None:
            seen.observed_at = observed_at
            if seen.synced == "True":
                seen.synced_at = observed_at

    def forget_policy(self, ref: Ref) -> None:
        self._objects.policies.pop(ref, None)

    def report_connection(self, key: Ref, reason: str) -> None:
        self._objects.connections[key] = reason

    def forget_connection(self, key: Ref) -> None:
        self._objects.connections.pop(key, None)

    # --- the controller's queue and workers (controller-runtime's names) ------------------------------------

    def queue_added(self) -> None:
        """A key entered the queue (a request for a key already queued coalesces and is not counted)."""
        self._adds.inc()

    def queue_retried(self) -> None:
        """A key was requeued with backoff after a failure."""
        self._retries.inc()

    def queue_waited(self, seconds: float) -> None:
        """A worker took a key that had waited `seconds` in the queue."""
        self._queued.observe(seconds)

    def work_took(self, seconds: float) -> None:
        """A worker finished a key after `seconds`."""
        self._worked.observe(seconds)

    def reconciled(self, result: str, seconds: float) -> None:
        """One reconcile ended with `result` (success, error, requeue or requeue_after) after `seconds`."""
        if result not in RECONCILE_RESULTS:
            raise ValueError(
                f"reconcile result {result!r}: allowed values are {', '.join(RECONCILE_RESULTS)}"
            )
        self._reconciles[result].inc()
        if result == "error":
            self._reconcile_errors.inc()
        self._reconcile_seconds.observe(seconds)

    def watch_queue(self, depth: Callable[[], int], running: Callable[[], Sequence[float]]) -> None:
        """Read at scrape time: keys waiting now, and the monotonic start times of the keys in progress."""
        self._controller.depth, self._controller.running = depth, running

    def set_workers(self, max_workers: int, active: Callable[[], int]) -> None:
        """The worker pool's size, and how many workers are reconciling right now (read at scrape time)."""
        self._controller.max_workers, self._controller.active = max_workers, active

    def serve(self, port: int) -> None:
        start_http_server(port, registry=self.registry)
