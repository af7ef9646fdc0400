"""Prometheus metrics, on their own port (kopf has none built in).

Gauges about objects (policies by Ready/Synced, VMs by phase, connections by reason) are computed at scrape
time from the last status each object reported, so a deleted object simply disappears instead of leaving a
stale labelled series behind. ZStack calls are counted per attempt through the client's `on_call` hook.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from vmclock.engine.conditions import READY, SYNCED, find_condition
from vmclock.refs import Ref
from vmclock.zstack.errors import metric_code
from vmclock.zstack.observe import OK

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SUCCESS = (OK, "ok")  # what on_call and the track-write count say for success


class _CodeCounter(Counter):
    """A counter whose last label is an error code an endpoint may choose: only values of a closed set are
    kept (zstack.errors.metric_code), so the number of series stays bounded (design §6.6)."""

    def labels(self, *labelvalues: Any, **labelkwargs: Any) -> _CodeCounter:
        if labelkwargs or not labelvalues:
            raise TypeError("label values of this counter go by position, the code last")
        *others, code = labelvalues
        return super().labels(*others, code if code in SUCCESS else metric_code(code))


class _ObjectGauges(Collector):
    def __init__(self) -> None:
        self.policies: dict[Ref, tuple[str, str, Mapping[str, int]]] = {}
        self.connections: dict[Ref, str] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        policies = GaugeMetricFamily(
            "vmclock_policies", "VmClockPolicies by condition", labels=["ready", "synced"]
        )
        for (ready, synced), count in Tally((r, s) for r, s, _ in self.policies.values()).items():
            policies.add_metric([ready, synced], count)
        vms = GaugeMetricFamily("vmclock_vms", "Selected VMs by phase, over all policies", labels=["phase"])
        phases: Tally[str] = Tally()
        for _, _, summary in self.policies.values():
            phases.update(summary)
        for phase, count in sorted(phases.items()):
            vms.add_metric([phase], count)
        connections = GaugeMetricFamily(
            "vmclock_connections", "ZStackConnections by Ready reason", labels=["reason"]
        )
        for reason, count in Tally(self.connections.values()).items():
            connections.add_metric([reason], count)
        yield from (policies, vms, connections)


def _condition_status(status: Mapping[str, Any], kind: str) -> str:
    condition = find_condition(status.get("conditions"), kind)
    return str(condition.get("status", "Unknown")) if condition else "Unknown"


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._objects = _ObjectGauges()
        self.registry.register(self._objects)
        self.zstack_requests = _CodeCounter(
            "vmclock_zstack_requests",
            "ZStack API call attempts",
            ["operation", "code"],
            registry=self.registry,
        )
        self.zstack_seconds = Histogram(
            "vmclock_zstack_request_seconds",
            "ZStack API call latency",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.drift = Counter(
            "vmclock_drift_detected",
            "VMs found with another track than their policy wants",
            registry=self.registry,
        )
        self.writes = _CodeCounter(
            "vmclock_track_writes", "SetVmClockTrack outcomes", ["purpose", "result"], registry=self.registry
        )

    def on_call(self, operation: str, code: str, seconds: float) -> None:
        self.zstack_requests.labels(operation, code).inc()
        self.zstack_seconds.labels(operation).observe(seconds)

    def report_policy(self, key: Ref, status: Mapping[str, Any]) -> None:
        summary = status.get("summary") or {}
        counts = {k: int(v) for k, v in summary.items() if k != "total" and isinstance(v, int)}
        self._objects.policies[key] = (
            _condition_status(status, READY),
            _condition_status(status, SYNCED),
            counts,
        )

    def forget_policy(self, key: Ref) -> None:
        self._objects.policies.pop(key, None)

    def report_connection(self, key: Ref, reason: str) -> None:
        self._objects.connections[key] = reason

    def forget_connection(self, key: Ref) -> None:
        self._objects.connections.pop(key, None)

    def serve(self, port: int) -> None:
        start_http_server(port, registry=self.registry)
