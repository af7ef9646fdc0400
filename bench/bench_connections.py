"""Benchmark: what one Ready ZStackConnection costs the operator (memory, sockets, idle CPU), and so how many
connections one replica serves within the Deployment's memory limit.

Numbers, not pass/fail. Starts etcd + kube-apiserver (tests/controlplane), applies crds/, runs the simulator
and the operator (``python -m vmclock run -A``) as real processes, then adds ZStackConnections in steps (each
with its own credentials Secret, all to the one simulator, no policies) and, once every connection of a step
is Ready samples the operator's open sockets and, once it has been idle for ``SETTLE`` seconds, its resident
memory (VmRSS), its sockets again and the CPU it used over ``WINDOW`` seconds. The cost per connection is the
slope from the first step with connections to the last; the capacity is what the limit leaves after the
measured peak of reconciling policies (bench/bench_operator.py) divided by that slope.

    .venv/bin/python bench/bench_connections.py [--steps 0,100,400,800] [--json PATH]

Prints one line per step and, last, the results as one JSON document.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the control-plane tooling and the e2e harness live there

from controlplane import ControlPlane, require_binaries  # noqa: E402
from harness import OperatorProcess, SimulatorProcess, Tenant, account_secret, connection  # noqa: E402
from harness.vitals import MIB, cpu_seconds, quantity_bytes, status_bytes  # noqa: E402

NAMESPACE = "bench-connections"
SETTLE = 20.0  # idle seconds before sampling: first checks and their log lines are over
WINDOW = 30.0  # idle CPU is measured over this long
READY_TIMEOUT = 600.0
# Peak RSS while reconciling one 1,000-VM policy and 100 ten-VM policies (bench/bench_operator.py, README).
RECONCILE_PEAK_MIB = 121
DEPLOYMENT = REPO / "deploy" / "base" / "deployment.yaml"


def memory_limit_bytes() -> int:
    (container,) = yaml.safe_load(DEPLOYMENT.read_text())["spec"]["template"]["spec"]["containers"]
    return quantity_bytes(container["resources"]["limits"]["memory"])


def sockets(pid: int) -> int:
    """Open socket descriptors of the process (ZStack sessions, the API server, listeners)."""
    count = 0
    for entry in os.scandir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(entry.path).startswith("socket:")
    return count


def ready_count(tenant: Tenant) -> int:
    items = tenant.kubectl.json("get", "zstackconnections", namespace=tenant.namespace)["items"]
    return sum(
        any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in item.get("status", {}).get("conditions", [])
        )
        for item in items
    )


def add_connections(tenant: Tenant, endpoint: str, start: int, stop: int) -> None:
    objects = []
    for index in range(start, stop):
        secret = f"zstack-{index}"
        objects += [
            account_secret(secret, "admin", "password", allow=endpoint),
            connection(f"zs-{index}", endpoint, secret),
        ]
    if objects:
        tenant.apply(*objects)


def wait_ready(tenant: Tenant, count: int) -> float:
    started = time.monotonic()
    while (ready := ready_count(tenant)) < count:
        if time.monotonic() - started > READY_TIMEOUT:
            raise TimeoutError(f"{ready} of {count} connections Ready after {READY_TIMEOUT:.0f}s")
        time.sleep(2)
    return time.monotonic() - started


def sample(pid: int, count: int, ready_seconds: float) -> dict[str, Any]:
    """Sockets right when the step is Ready (each new client's keep-alive session is still open), then memory
    and CPU once idle (aiohttp closes idle keep-alive sockets after 15 s)."""
    at_ready = sockets(pid)
    time.sleep(SETTLE)
    cpu = cpu_seconds(pid)
    time.sleep(WINDOW)
    return {
        "connections": count,
        "readySeconds": round(ready_seconds, 1),
        "rssMiB": round(status_bytes(pid, "VmRSS") / MIB, 1),
        "socketsAtReady": at_ready,
        "socketsIdle": sockets(pid),
        "idleCpuPercent": round(100 * (cpu_seconds(pid) - cpu) / WINDOW, 2),
    }


def summary(steps: list[dict[str, Any]], peak_mib: float) -> dict[str, Any]:
    """The marginal cost is the slope from the first step with connections to the last: going from none to
    some also pays once for what the first connection loads (client code, TLS, thread pools)."""
    empty, first, last = steps[0], steps[1], steps[-1]
    added = last["connections"] - first["connections"] if len(steps) > 2 else first["connections"]
    base = first if len(steps) > 2 else empty
    per_mib = (last["rssMiB"] - base["rssMiB"]) / added
    limit_mib = memory_limit_bytes() / MIB
    return {
        "perConnectionKiB": round(per_mib * 1024, 1),
        "firstUseMiB": round(first["rssMiB"] - empty["rssMiB"] - per_mib * first["connections"], 1),
        "socketsAtReadyPerConnection": round((last["socketsAtReady"] - base["socketsAtReady"]) / added, 2),
        "socketsIdlePerConnection": round((last["socketsIdle"] - base["socketsIdle"]) / added, 2),
        "idleCpuPercentPer100": round(100 * (last["idleCpuPercent"] - base["idleCpuPercent"]) / added, 2),
        "limitMiB": limit_mib,
        "peakRssMiB": round(peak_mib, 1),
        # What the limit leaves after the measured reconcile peak (which includes the first-use cost), at the
        # marginal cost per connection.
        "connectionsWithinLimit": int((limit_mib - RECONCILE_PEAK_MIB) / per_mib) if per_mib > 0 else None,
    }


def run(counts: list[int], logs: Path) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        plane = stack.enter_context(ControlPlane(require_binaries()))
        kubectl = plane.kubectl()
        crds = kubectl("apply", "--server-side", "-f", str(REPO / "crds"), "-o", "name").stdout.split()
        kubectl("wait", "--for=condition=Established", "--timeout=60s", *crds)
        sim = stack.enter_context(
            SimulatorProcess(log_path=logs / "simulator.log", vms=10, python=sys.executable)
        )
        operator = stack.enter_context(
            OperatorProcess(
                log_path=logs / "operator.log", kubeconfig=plane.kubeconfig, python=sys.executable
            )
        )
        pid = operator.pid
        if pid is None:
            raise RuntimeError("the operator is not running")
        kubectl("create", "namespace", NAMESPACE)
        tenant = Tenant(kubectl, NAMESPACE)
        steps, previous = [], 0
        for count in counts:
            add_connections(tenant, sim.endpoint, previous, count)
            steps.append(sample(pid, count, wait_ready(tenant, count)))
            print(json.dumps(steps[-1]), file=sys.stderr, flush=True)
            previous = count
        return {"steps": steps, **summary(steps, status_bytes(pid, "VmHWM") / MIB)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", default="0,100,400,800", help="connection counts to sample at, ascending")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    counts = [int(step) for step in args.steps.split(",")]
    if len(counts) < 2 or counts[0] != 0 or counts != sorted(set(counts)):
        parser.error("--steps: 0, then at least one more connection count, ascending (e.g. 0,100,400)")
    results = run(counts, Path(tempfile.mkdtemp(prefix="vmclock-bench-connections-")))
    results["loadAverageAfter"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
