"""Everything the handlers share for one operator process, built once and closed at cleanup."""

from __future__ import annotations

from dataclasses import dataclass

from vmclock.connections import ConnectionManager
from vmclock.connections.trust import EndpointPolicy
from vmclock.kopfapp.connections import ConnectionWorker
from vmclock.kopfapp.controller import PolicyController
from vmclock.kopfapp.liveness import Heartbeats
from vmclock.kopfapp.metrics import Metrics
from vmclock.kubeapi import KubeApi


@dataclass
class Runtime:
    kube: KubeApi
    metrics: Metrics
    connections: ConnectionManager
    heartbeats: Heartbeats
    controller: PolicyController
    connection_worker: ConnectionWorker
    metrics_port: int = 0  # 0: no metrics endpoint

    @classmethod
    def build(cls, *, metrics_port: int = 0, endpoints: EndpointPolicy | None = None) -> Runtime:
        kube = KubeApi()
        metrics = Metrics()
        connections = ConnectionManager(kube, on_call=metrics.on_call, endpoints=endpoints)
        heartbeats = Heartbeats()
        controller = PolicyController(kube, connections, metrics)
        worker = ConnectionWorker(kube, connections, controller, metrics, heartbeats=heartbeats)
        return cls(kube, metrics, connections, heartbeats, controller, worker, metrics_port)
