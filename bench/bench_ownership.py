"""What one ownership check costs on the event loop as the cluster's policies grow (issue 14), for one or
more operator source trees side by side.

Each tree runs in its own process (``PYTHONPATH`` set to the tree's ``operator/``) on the real
`PolicyController`: N policies of 10 VMs each (plus S selector policies with resolved selections) are
indexed the way kopf's indexing handler indexes them, then `kick_sharing` (the lookup every new generation
and every deletion makes: the other policies sharing a policy's VMs) is timed for 10-VM policies. A tree
without the by-VM index walks every policy per call; with it, the cost follows the policy's own VMs.

    .venv/bin/python bench/bench_ownership.py [--tree NAME=DIR ...] [--policies 1000,5000,20000]
        [--selectors 0,20]

Numbers, not pass/fail: milliseconds per call, the median of 5 runs of 50 calls each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

# the tree's vmclock: each tree is measured in a process whose PYTHONPATH puts it first
from vmclock.kopfapp.claims import index_entry
from vmclock.kopfapp.controller import PolicyController
from vmclock.kopfapp.metrics import Metrics
from vmclock.refs import Ref

REPO = Path(__file__).resolve().parents[1]
NS = "bench"
SIZE = 10
CALLS = 50
RUNS = 5


def vm(n: int) -> str:
    return f"{n:032x}"


def body(name: str, **spec: Any) -> dict[str, Any]:
    metadata = {
        "namespace": NS,
        "name": name,
        "uid": f"uid-{name}",
        "creationTimestamp": "2026-05-01T12:00:00Z",
    }
    return {"metadata": metadata, "spec": {"track": "guest", **spec}}


def measure(policies: int, selectors: int) -> float:
    """Milliseconds per `kick_sharing` of a 10-VM policy, in this process's tree."""
    controller = PolicyController(None, None, Metrics(CollectorRegistry()), workers=1)  # type: ignore[arg-type]
    index: dict[Any, list[Any]] = {}
    bodies = [body(f"u{i:05d}", vmUuids=[vm(i * SIZE + j) for j in range(SIZE)]) for i in range(policies)]
    bodies += [body(f"s{i:03d}", selector={"namePattern": f"s{i}-*"}) for i in range(selectors)]
    for found in bodies:
        indexed = getattr(controller, "indexed", index_entry)(found)  # the tree's indexing handler
        for key, entry in indexed.items():
            index.setdefault(key, []).append(entry)
    controller._index = index  # type: ignore[assignment]  # kopf's own index, as `bind` keeps it
    for i in range(selectors):
        runtime = controller.runtimes.bind(Ref(NS, f"s{i:03d}"), f"uid-s{i:03d}")
        runtime.selection = frozenset(vm(10_000_000 + i * 1000 + j) for j in range(1000))
    per_call = []
    for run in range(RUNS):
        started = time.perf_counter()
        for k in range(CALLS):
            n = (run * CALLS + k) % policies
            controller.kick_sharing([vm(n * SIZE + j) for j in range(SIZE)], Ref(NS, f"u{n:05d}"))
        per_call.append((time.perf_counter() - started) / CALLS * 1000)
    return round(statistics.median(per_call), 3)


def run_tree(source: Path, policies: list[int], selectors: list[int]) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(source)}
    argv = [sys.executable, __file__, "--worker", ",".join(map(str, policies)), ",".join(map(str, selectors))]
    out = subprocess.run(argv, env=env, check=True, capture_output=True, text=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=DIR")
    parser.add_argument("--policies", default="1000,5000,20000")
    parser.add_argument("--selectors", default="0,20")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        policies, selectors = ([int(x) for x in part.split(",")] for part in args.worker)
        print(json.dumps({f"{p}/{s}": measure(p, s) for p in policies for s in selectors}))
        return 0
    trees = [t.partition("=")[::2] for t in args.tree] or [("this", str(REPO / "operator"))]
    policies = [int(x) for x in args.policies.split(",")]
    selectors = [int(x) for x in args.selectors.split(",")]
    results = {name: run_tree(Path(directory), policies, selectors) for name, directory in trees}
    print(f"{'policies / selector policies':32}" + "".join(f"{name:>14}" for name, _ in trees))
    for p in policies:
        for s in selectors:
            row = "".join(f"{results[name][f'{p}/{s}']:>11.3f} ms" for name, _ in trees)
            print(f"{f'{p:,} x {SIZE} VMs / {s}':32}{row}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
