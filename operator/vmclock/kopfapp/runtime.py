"""Everything the handlers share for one operator process, built once and closed at cleanup."""

from __future__ import annotations

from dataclasses import dataclass

from vmclock.connections import ConnectionManager
from vmclock.kopfapp.connections import ConnectionWorker
from vmclock.kopfapp.liveness import Heartbeats
from vmclock.kopfapp.metrics import Metrics
from vmclock.kopfapp.policies import PolicyWorker
from vmclock.kopfapp.scheduler import ResyncScheduler
from vmclock.kubeapi import KubeApi


@dataclass
class Runtime:
    kube: KubeApi
    metrics: Metrics
    connections: ConnectionManager
    scheduler: ResyncScheduler
    heartbeats: Heartbeats
    policies: PolicyWorker
    connection_worker: ConnectionWorker
    metrics_port: int = 0  # 0: no metrics endpoint

    @classmethod
    def build(cls, *, metrics_port: int = 0) -> Runtime:
        kube = KubeApi()
        metrics = Metrics()
        connections = ConnectionManager(kube, on_call=metrics.on_call)
        scheduler = ResyncScheduler()
        heartbeats = Heartbeats()
        policies = PolicyWorker(kube, connections, scheduler, metrics)
        worker = ConnectionWorker(kube, connections, policies, scheduler, metrics, heartbeats=heartbeats)
        return cls(kube, metrics, connections, scheduler, heartbeats, policies, worker, metrics_port)
