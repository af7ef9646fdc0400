"""Benchmark: one 10,000-VM selector policy end to end, through a real kube-apiserver, against a simulator.

Numbers, not pass/fail (issue 10's goals are printed beside them). Starts etcd + kube-apiserver
(tests/controlplane), applies crds/, runs the simulator (10,000 VMs, ``--job-latency 0.05``) and the operator
(``python -m vmclock run -A``) as real processes, then measures for a `Restore` policy selecting every
platform (so about 8,000 VMs need a write):
1. ``kubectl apply`` -> Ready=True: time, SetVmClockTrack calls, bytes of the stored ``.status``;
2. in-sync resync rounds at ``resyncIntervalSeconds: 10``: ZStack reads and writes per round (rounds are
   counted in the operator's log), and whether the object was written at all meanwhile (any write, status
   included, moves its resourceVersion);
3. the operator's peak resident memory (VmHWM);
4. the deletion, which restores every VM the policy changed.

    .venv/bin/python bench/bench_selector.py [--vms N] [--window SECONDS]

The last line of stdout is the results as one JSON document.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the control-plane tooling and the e2e harness live there

from bench_operator_probes import sample  # noqa: E402
from controlplane import ControlPlane, require_binaries  # noqa: E402
from harness import (  # noqa: E402
    OperatorProcess,
    SimulatorProcess,
    Tenant,
    account_secret,
    condition_is,
    connection,
    wait_for,
)
from harness.objects import API_VERSION  # noqa: E402

NAMESPACE, SECRET, CONNECTION, POLICY = "bench", "zstack-credentials", "default", "fleet"
JOB_LATENCY = 0.05
ROUND_SECONDS = 10
GOALS = {
    "applySeconds": "<= 30",
    "readsPerRound": "<= 30",
    "writesPerRound": "0",
    "statusWrittenInWindow": "no",
}
PLATFORMS = ["Windows", "WindowsVirtio", "Linux", "Paravirtualization", "Other"]


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def policy(resync: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "track": "guest",
        "selector": {"platforms": PLATFORMS},
        "deletionPolicy": "Restore",
    }
    if resync is not None:
        spec["resyncIntervalSeconds"] = resync
    return {"apiVersion": API_VERSION, "kind": "VmClockPolicy", "metadata": {"name": POLICY}, "spec": spec}


def reconciles(log: Path) -> int:
    """Reconciles of the measured policy so far (the operator logs one line per finished reconcile)."""
    marker = f"VmClockPolicy {NAMESPACE}/{POLICY} generation"
    return sum(1 for line in log.read_text().splitlines() if marker in line)


def run(vms: int, window: float, logs: Path) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        say("starting kube-apiserver + etcd, the simulator and the operator ...")
        plane = stack.enter_context(ControlPlane(require_binaries()))
        kubectl = plane.kubectl()
        crds = kubectl("apply", "--server-side", "-f", str(REPO / "crds"), "-o", "name").stdout.split()
        kubectl("wait", "--for=condition=Established", "--timeout=60s", *crds)
        sim = stack.enter_context(
            SimulatorProcess(log_path=logs / "simulator.log", vms=vms, job_latency=JOB_LATENCY)
        )
        operator = stack.enter_context(
            OperatorProcess(log_path=logs / "operator.log", kubeconfig=plane.kubeconfig)
        )
        kubectl("create", "namespace", NAMESPACE)
        tenant = Tenant(kubectl, NAMESPACE)
        tenant.apply(
            account_secret(
                SECRET, "admin", "password", allow=sim.endpoint
            ),  # the simulator's default account
            connection(CONNECTION, sim.endpoint, SECRET, resync_seconds=3600),
        )
        wait_for(
            lambda: tenant.connection(CONNECTION),
            lambda c: condition_is(c, "Ready", "True"),
            timeout=60,
            what="ZStackConnection Ready",
        )

        say(f"applying a selector policy over {vms:,} VMs ...")
        sim.admin.reset_stats()
        started = time.monotonic()
        tenant.apply(policy())
        ready = tenant.wait_ready(POLICY, timeout=900)
        apply_seconds = time.monotonic() - started
        writes = sim.admin.stats().count("SetVmClockTrack")
        status_bytes = len(json.dumps(ready["status"], separators=(",", ":")).encode())

        say(f"measuring in-sync rounds every {ROUND_SECONDS}s for {window:.0f}s ...")
        tenant.apply(policy(resync=ROUND_SECONDS))
        time.sleep(ROUND_SECONDS + 5)  # the spec change's own reconcile is not a round
        sim.admin.reset_stats()
        version, before = tenant.policy(POLICY)["metadata"]["resourceVersion"], reconciles(operator.log_path)
        time.sleep(window)
        stats = sim.admin.stats()
        rounds = max(1, reconciles(operator.log_path) - before)
        written = tenant.policy(POLICY)["metadata"]["resourceVersion"] != version  # any write moves it
        reads = {api: n for api, n in stats.calls.items() if api.startswith("Query") or api.startswith("Get")}
        assert operator.pid is not None
        peak_mib = sample(operator.pid).peak_rss_kib / 1024

        say("deleting the policy (restores every VM it changed) ...")
        started = time.monotonic()
        tenant.delete("vmclockpolicy", POLICY, timeout=900)
        delete_seconds = time.monotonic() - started
        return {
            "vms": vms,
            "selected": ready["status"]["summary"]["total"],
            "applySeconds": round(apply_seconds, 2),
            "writes": writes,
            "statusBytes": status_bytes,
            "statusVmsListed": len(ready["status"].get("vms", [])),
            "rounds": rounds,
            "readsByApi": reads,
            "readsPerRound": round(sum(reads.values()) / rounds, 2),
            "writesPerRound": round(stats.count("SetVmClockTrack") / rounds, 2),
            "statusWrittenInWindow": "yes" if written else "no",
            "operatorPeakRssMiB": round(peak_mib, 1),
            "deleteRestoreSeconds": round(delete_seconds, 2),
        }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vms", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=45.0, help="seconds of in-sync rounds to measure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vmclock-bench-selector-") as logs:
        results = run(args.vms, args.window, Path(logs))
    for key, value in results.items():
        goal = f"   (goal {GOALS[key]})" if key in GOALS else ""
        print(f"{key:24} {value}{goal}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
