"""What the operator benchmarks do through the API server: apply and watch until Ready, and snapshots of
the write requests it served and of the policies' statuses.

Shared by bench_operator.py and bench_core.py, so "Ready" and "a status write" mean the same in both.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bench_operator_probes import api_writes, cpu_seconds
from bench_operator_watch import PolicyWatch
from controlplane import ControlPlane, Kubectl
from harness import Obj, condition_is

CONVERGE_TIMEOUT = 600.0
STATUS_PATCH = "PATCH vmclockpolicies/status"


@dataclass(frozen=True)
class Snapshot:
    """Write requests the API server has served (by verb and resource), each policy's status, and the
    operator's CPU seconds so far."""

    writes: Counter[str]
    statuses: dict[str, Obj]
    operator_cpu: float


def ready_now(obj: Obj) -> bool:
    status = obj.get("status") or {}
    generation = obj["metadata"].get("generation")
    return status.get("observedGeneration") == generation and condition_is(obj, "Ready", "True")


def apply_until_ready(
    kubectl: Kubectl,
    watch: PolicyWatch,
    namespace: str,
    objs: list[Obj],
    *,
    generation: int = 1,
    timeout: float = CONVERGE_TIMEOUT,
    server_side: bool = False,
) -> tuple[dict[str, Obj], float, dict[str, float]]:
    """One ``kubectl apply`` of ``objs``, watched until every one is Ready for its current generation,
    which must be at least `generation` (so objects that were Ready before the apply do not count).

    kubectl runs on a side thread while the watch is already open, so a policy that turns Ready before
    kubectl has created the last object is timed when it does, not when kubectl returns. `server_side`
    applies without kubectl's last-applied annotation, which cannot hold a spec over 256 KiB (a policy of
    10,000 VM UUIDs). Returns the
    objects as last seen, the seconds kubectl took, and the seconds from the start to each Ready.
    """
    names = {obj["metadata"]["name"] for obj in objs}
    ready_at: dict[str, float] = {}
    with ThreadPoolExecutor(max_workers=1) as side:
        started = time.monotonic()

        def apply() -> float:
            kubectl.apply(objs, namespace=namespace, server_side=server_side)
            return time.monotonic() - started

        applying = side.submit(apply)

        def all_ready(seen: dict[str, Obj]) -> bool:
            if applying.done() and applying.exception() is not None:
                applying.result()  # raises kubectl's error instead of waiting for the timeout
            elapsed = round(time.monotonic() - started, 2)
            for name in names - ready_at.keys():
                obj = seen.get(name)
                if obj is not None and obj["metadata"]["generation"] >= generation and ready_now(obj):
                    ready_at[name] = elapsed
            return len(ready_at) == len(names)

        only = next(iter(names)) if len(names) == 1 else None
        seen = watch.until(all_ready, timeout=timeout, name=only)
        return seen, round(applying.result(), 2), ready_at


def api_server_writes(plane: ControlPlane) -> Counter[str]:
    status, body = plane.get("/metrics")
    if status != 200:
        raise RuntimeError(f"kube-apiserver /metrics answered {status}")
    return api_writes(body.decode())


def snapshot(plane: ControlPlane, kubectl: Kubectl, namespace: str, operator_pid: int) -> Snapshot:
    items = kubectl.json("get", "vmclockpolicies", namespace=namespace)["items"]
    statuses = {item["metadata"]["name"]: item.get("status", {}) for item in items}
    return Snapshot(api_server_writes(plane), statuses, cpu_seconds(operator_pid))
