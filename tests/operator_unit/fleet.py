"""Many policies reconciled by the real controller on the in-memory Kubernetes API, and what the operator
keeps of them (issue 14): shared by tests/operator_unit/test_memory.py and bench/bench_memory.py.

Every VM starts on `host` and every policy wants `guest`, so each policy writes all its VMs (a record, a
pending restart per running VM), as bench_core's part 2 does. What the API server and ZStack keep for
their side (policy bodies, statuses, ConfigMaps, the simulator's write log) is dropped before a measurement
(`drop_other_sides`), and allocations the simulator made are left out (`operator_site`), so what is retained
over a baseline is the operator's own.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

import vmclock
from vmclock.connections import ConnectionManager, parse_connection_spec
from vmclock.connections.trust import EndpointPolicy
from vmclock.engine.spec import CONNECTION_PLURAL, POLICY_PLURAL
from vmclock.kopfapp.controller import PolicyController
from vmclock.kopfapp.metrics import Metrics
from vmclock.refs import Ref
from vmclock.simulator import Simulator

from . import test_controller
from .test_controller import CONNECTION, NS, FakeIndex, FakeKube, ready, secret

OPERATOR = str(Path(vmclock.__file__).parent)
SIMULATOR = str(Path(OPERATOR) / "simulator")
STDLIB = str(Path(asyncio.__file__).parent.parent) + "/"  # not site-packages: that is under a venv
STAND_IN = test_controller.__file__
RESYNC = 3600  # no round of its own inside a measurement: rounds are started by `in_sync_round`


class Unrecorded(list[Any]):
    """FakeKube keeps every status patch for tests to read; a fleet has nobody reading them."""

    def append(self, item: Any) -> None:
        return None


class Fleet:
    """The controller and its parts (default worker pool) on a FakeKube, `policies` x `size` VMs."""

    def __init__(self, sim: Simulator, policies: int, size: int) -> None:
        self.sim, self.kube, self.index = sim, FakeKube(), FakeIndex()
        self.kube.patches = Unrecorded()
        self.kube.secrets[(NS, "creds")] = secret("1", sim)
        self.kube.objects[(CONNECTION_PLURAL, *CONNECTION)] = {
            "metadata": {"namespace": NS, "name": CONNECTION.name, "generation": 1, "uid": "uid-c"},
            "spec": {"endpoint": sim.endpoint, "credentialsSecretRef": {"name": "creds"}},
        }
        self.manager = ConnectionManager(self.kube, endpoints=EndpointPolicy(allow_insecure=True))
        self.metrics = Metrics(CollectorRegistry())
        self.controller = PolicyController(self.kube, self.manager, self.metrics)
        uuids = sim.state.vm_uuids()
        for uuid in uuids:
            sim.state.set_track_behind(uuid, "host")
        self.groups = [uuids[i * size : (i + 1) * size] for i in range(policies)]

    def start(self) -> None:
        self.index.serve(self.controller, self.kube)  # starts the workers

    async def stop(self) -> None:
        await self.controller.stop()
        await self.manager.close_all()

    def add(self, numbers: Iterable[int]) -> list[Ref]:
        """Policies (bodies only: `index` tells the controller, as kopf's index would)."""
        refs = []
        for i in numbers:
            name = f"p{i:05d}"
            self.kube.objects[(POLICY_PLURAL, NS, name)] = {
                "metadata": {
                    "namespace": NS,
                    "name": name,
                    "uid": f"uid-{name}-0000-0000-000000000000",
                    "generation": 1,
                    "resourceVersion": "1",
                    "creationTimestamp": "2026-05-01T12:00:00Z",
                },
                "spec": {"track": "guest", "vmUuids": self.groups[i], "resyncIntervalSeconds": RESYNC},
            }
            refs.append(Ref(NS, name))
        return refs

    def index_new(self, refs: Iterable[Ref]) -> None:
        """kopf's indexing handler runs for each new policy and kopf keeps what it returns (FakeIndex.sync
        would index every policy again, each time)."""
        for ref in refs:
            for key, entry in self.controller.indexed(self.kube.objects[(POLICY_PLURAL, *ref)]).items():
                self.index.setdefault(key, []).append(entry)

    async def apply(self, refs: list[Ref]) -> None:
        """Their create handlers run; back when every one is Ready and the workers are idle."""
        for ref in refs:
            body = self.kube.objects[(POLICY_PLURAL, *ref)]
            self.controller.enqueue(ref, uid=body["metadata"]["uid"], generation=1, connection="default")
        await self.settle(lambda: self.all_ready(refs) and self.idle())

    async def in_sync_round(self, refs: list[Ref]) -> None:
        """Every policy due at once, started the way the connection's loop starts a round."""
        for ref in refs:
            runtime = self.controller.runtimes.get(ref)
            assert runtime is not None
            self.controller.runtimes.schedule(runtime, 0.0)
        spec = self.kube.objects[(CONNECTION_PLURAL, *CONNECTION)]["spec"]
        self.controller.start_round(CONNECTION, parse_connection_spec(spec))
        await self.settle(lambda: self.controller.queue.depth() > 0 or self.idle())
        await self.settle(self.idle)

    def idle(self) -> bool:
        queue = self.controller.queue
        return queue.depth() == 0 and queue.active() == 0

    def all_ready(self, refs: Iterable[Ref]) -> bool:
        return all(ready(self.kube.objects[(POLICY_PLURAL, *r)].get("status", {})) for r in refs)

    @staticmethod
    async def settle(done: Callable[[], bool], within: float = 1800.0) -> None:
        deadline = time.monotonic() + within
        while not done():
            assert time.monotonic() < deadline, "the fleet did not settle in time"
            await asyncio.sleep(0.02)

    def drop_other_sides(self, refs: Iterable[Ref]) -> None:
        """What the API server and ZStack keep of these policies is not the operator's."""
        for ref in refs:
            del self.kube.objects[(POLICY_PLURAL, *ref)]
            self.kube.config_maps.pop((ref.namespace, ref.name), None)
        self.kube.config_maps = {k: v for k, v in self.kube.config_maps.items() if k[0] != NS}
        self.sim.stats.reset()


def operator_site(trace: tracemalloc.Trace) -> str | None:
    """The operator's line (`file.py:line` under the package) that made an allocation: the innermost frame
    that is neither the standard library's (json, copy, asyncio work on the caller's behalf) nor the
    Kubernetes stand-in's (its copies are what KubeApi would decode). None when the innermost other frame is
    a library's (aiohttp's and yarl's own bounded caches) or the simulator's (ZStack's side)."""
    for frame in reversed(trace.traceback):  # the traceback runs from the oldest frame to the newest
        if frame.filename.startswith(SIMULATOR):
            return None
        if frame.filename.startswith(OPERATOR):
            return f"{frame.filename[len(OPERATOR) + 1 :]}:{frame.lineno}"
        if not (frame.filename.startswith(STDLIB) or frame.filename == STAND_IN):
            return None
    return None


def retained(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> Counter[str]:
    """Bytes held at `after` over `before`, by the operator's allocating line (`(elsewhere) file` else)."""

    def by_site(snapshot: tracemalloc.Snapshot) -> Counter[str]:
        sites: Counter[str] = Counter()
        for trace in snapshot.traces:
            sites[operator_site(trace) or f"(elsewhere) {trace.traceback[-1].filename}"] += trace.size
        return sites

    grown = by_site(after)
    grown.subtract(by_site(before))
    return grown


def operator_bytes(sites: Counter[str]) -> int:
    return sum(size for site, size in sites.items() if not site.startswith("(elsewhere)"))
