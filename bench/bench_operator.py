"""Benchmark: one big policy against many small ones, end to end, through a real kube-apiserver.

Numbers, not pass/fail (issue 8, design.md §5.5: "100 policies x 10 VMs cost about what 1 policy x 1,000
VMs costs"). Starts etcd + kube-apiserver (tests/controlplane), applies crds/, runs the simulator
(``--job-latency 0.05``) and the operator (``python -m vmclock run -A``) as real processes, with ONE
ZStackConnection, then runs two scenarios one after the other, on different VMs (so both need writes):
1. 1 policy x 1,000 VMs; 2. 100 policies x 10 VMs (one ``kubectl apply`` of a List). For each:
- ``kubectl apply`` -> every policy Ready=True for its generation (seen through a watch), with the ZStack
  calls and CPU it took. The policies start on the connection's hour-long interval, so no resync round
  competes with the apply;
- ZStack calls per in-sync resync round: the policies are switched to ``resyncIntervalSeconds: 10`` (the
  minimum, one more ``kubectl apply``); the simulator's per-API counts and the operator's reconcile log
  lines are sampled until every policy was checked a few times (bench_operator_rounds). A round means
  every policy checked once, as in issue 8 ("reads per round" = reads x policies / reconciles); the API
  server's write requests (status PATCHes, Events), which status fields changed and the operator's CPU
  are taken over the same window;
- the operator's resident memory; then every policy is deleted (``Orphan``: no ZStack call), so the next
  scenario's rounds are measured alone.
Last, peak (VmHWM) and final (VmRSS) memory of the operator, the simulator and the control plane. The
connection's own resync interval is an hour, so its checks stay out of the windows.

    .venv/bin/python bench/bench_operator.py [--quick] [--json PATH] [--logs DIR]

Prints a table; the last line of stdout is the results as one JSON document.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the control-plane tooling and the e2e harness live there

from bench_cluster import STATUS_PATCH, Snapshot, api_server_writes, apply_until_ready, snapshot  # noqa: E402
from bench_operator_probes import (  # noqa: E402
    ReconcileLog,
    changed_paths,
    cpu_seconds,
    sample,
    zstack_calls,
)
from bench_operator_report import table  # noqa: E402
from bench_operator_rounds import WRITE_APIS, Burst, BurstMeter, Window, reads  # noqa: E402
from bench_operator_watch import PolicyWatch  # noqa: E402
from controlplane import ControlPlane, Kubectl, require_binaries  # noqa: E402
from harness import (  # noqa: E402
    Obj,
    OperatorProcess,
    SimulatorProcess,
    Tenant,
    account_secret,
    condition_is,
    connection,
    policy,
    wait_for,
)
from harness.e2e import VmPool  # noqa: E402

NAMESPACE = "bench"
SECRET = "zstack-credentials"
CONNECTION = "default"
JOB_LATENCY = 0.05
CONNECTION_RESYNC = 3600
POLICY_RESYNC = 10  # the CRD's minimum, so rounds come quickly
OPPOSITE = {"guest": "host", "host": "guest"}
STATUS_BUDGET = 256 * 1024


@dataclass(frozen=True)
class Shape:
    """One scenario: `policies` policies of `size` VMs each, every VM needing a write."""

    key: str
    policies: int
    size: int

    @property
    def label(self) -> str:
        return f"{self.policies} x {self.size:,}"

    def names(self) -> list[str]:
        return ["big"] if self.policies == 1 else [f"small-{i:03d}" for i in range(self.policies)]


@dataclass(frozen=True)
class Scale:
    vms: int
    one: Shape
    many: Shape
    resync_rounds: int


FULL = Scale(vms=2100, one=Shape("onePolicy", 1, 1000), many=Shape("manyPolicies", 100, 10), resync_rounds=3)
QUICK = Scale(vms=500, one=Shape("onePolicy", 1, 200), many=Shape("manyPolicies", 20, 10), resync_rounds=2)


class Stop(BaseException):
    """SIGTERM/SIGHUP: unwind like Ctrl-C (not an error, so no log tail is shown) and stop every child."""


def compact_size(value: Any) -> int:
    """Bytes of the value as compact JSON, the way the API server stores a custom resource in etcd."""
    return len(json.dumps(value, separators=(",", ":")).encode())


def spread(seconds: Iterable[float]) -> dict[str, float]:
    times = sorted(seconds)
    return {
        "first": times[0],
        "p50": times[len(times) // 2],
        "p90": times[int(len(times) * 0.9)],
        "last": times[-1],
    }


class Bench:
    """One run: the processes are started by :meth:`start` and torn down by the caller's ExitStack."""

    def __init__(self, scale: Scale, logs: Path, stack: contextlib.ExitStack) -> None:
        self.scale = scale
        self.logs = logs
        self.stack = stack

    # ----------------------------------------------------------------- set-up

    def start(self) -> None:
        say("starting kube-apiserver + etcd ...")
        self.plane = self.stack.enter_context(ControlPlane(require_binaries()))
        self.kubectl: Kubectl = self.plane.kubectl()
        crds = self.kubectl("apply", "--server-side", "-f", str(REPO / "crds"), "-o", "name").stdout.split()
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", *crds)
        say(f"starting the simulator ({self.scale.vms} VMs, job latency {JOB_LATENCY}s) ...")
        self.sim = self.stack.enter_context(
            SimulatorProcess(
                log_path=self.logs / "simulator.log",
                vms=self.scale.vms,
                job_latency=JOB_LATENCY,
                python=sys.executable,
            )
        )
        say("starting the operator ...")
        self.operator = self.stack.enter_context(
            OperatorProcess(
                log_path=self.logs / "operator.log", kubeconfig=self.plane.kubeconfig, python=sys.executable
            )
        )
        self.kubectl("create", "namespace", NAMESPACE)
        self.tenant = Tenant(self.kubectl, NAMESPACE)
        self.tenant.apply(
            # the simulator's default account, allowed to go to the simulator only
            account_secret(SECRET, "admin", "password", allow=self.sim.endpoint),
            connection(CONNECTION, self.sim.endpoint, SECRET, resync_seconds=CONNECTION_RESYNC),
        )
        wait_for(
            lambda: self.tenant.connection(CONNECTION),
            lambda c: condition_is(c, "Ready", "True"),
            timeout=60,
            what="ZStackConnection Ready",
        )
        self.pool = VmPool(self.sim.admin.vms())
        self.watch = PolicyWatch(self.plane.kubeconfig, NAMESPACE)

    # ----------------------------------------------------------------- probes

    def apply_until_ready(
        self, objs: list[Obj], generation: int = 1
    ) -> tuple[dict[str, Obj], float, dict[str, float]]:
        return apply_until_ready(self.kubectl, self.watch, NAMESPACE, objs, generation=generation)

    def pids(self) -> dict[str, int]:
        pids = {"operator": self.operator.pid, "simulator": self.sim.pid, **self.plane.pids}
        return {name: pid for name, pid in pids.items() if pid is not None}

    def cpu(self) -> dict[str, float]:
        used = {name: cpu_seconds(pid) for name, pid in self.pids().items()}
        # Reaped children are only the kubectl runs: the daemons are still running.
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        used["bench+kubectl"] = time.process_time() + children.ru_utime + children.ru_stime
        return used

    def zstack_counts(self) -> Counter[str]:
        return Counter(self.sim.admin.stats().calls)

    def api_server_writes(self) -> Counter[str]:
        return api_server_writes(self.plane)

    def snapshot(self) -> Snapshot:
        return snapshot(self.plane, self.kubectl, NAMESPACE, self.operator.pid or 0)

    @contextlib.contextmanager
    def measured(self, into: dict[str, Any]) -> Iterator[None]:
        """Reset the simulator's counters, then record wall time, CPU per process, ZStack calls and the
        write requests the API server served (the operator's and kopf's PATCHes, Events, kubectl's own)."""
        self.sim.admin.reset_stats()
        cpu_before, calls_before = self.cpu(), zstack_calls(self.operator.metrics_url)
        writes_before = self.api_server_writes()
        started = time.monotonic()
        yield
        into["seconds"] = round(time.monotonic() - started, 2)
        calls = zstack_calls(self.operator.metrics_url) - calls_before
        into["operatorCalls"] = {op: round(n) for op, n in sorted(calls.count.items())}
        into["zstackMeanMs"] = calls.mean_ms()
        stats = self.sim.admin.stats()
        into["zstackCalls"] = dict(sorted(stats.calls.items()))
        into["zstackReads"] = reads(Counter(stats.calls))
        into["setVmClockTrack"] = stats.count("SetVmClockTrack")
        into["maxInFlight"] = stats.max_in_flight
        if stats.writes:
            into["writeSpanSeconds"] = round(stats.writes[-1].at - stats.writes[0].at, 2)
        into["cpuSeconds"] = {k: round(v - cpu_before.get(k, 0.0), 2) for k, v in self.cpu().items()}
        into["apiServerWrites"] = dict(sorted((self.api_server_writes() - writes_before).items()))

    # ----------------------------------------------------------------- scenarios

    def scenario(self, shape: Shape, step: int) -> dict[str, Any]:
        """Apply `shape`, measure its in-sync rounds, then delete its policies (Orphan: ZStack untouched)."""
        names = shape.names()
        groups = [self.take_group(shape.size) for _ in names]
        say(f"[{step}] {shape.label} VMs: apply -> all Ready ...")
        result: dict[str, Any] = {"policies": shape.policies, "vmsPerPolicy": shape.size}
        apply: dict[str, Any] = {}
        with self.measured(apply):
            seen, applied, ready_at = self.apply_until_ready(
                [policy(name, *group) for name, group in zip(names, groups, strict=True)]
            )
        apply["kubectlApplySeconds"], apply["readySeconds"] = applied, spread(ready_at.values())
        apply["phases"] = dict(
            Counter(str(vm.get("phase")) for obj in seen.values() for vm in obj["status"].get("vms", []))
        )
        if shape.policies == 1:
            apply["sizes"] = object_sizes(seen[names[0]])
        result["apply"] = apply
        rounds = self.scale.resync_rounds
        say(f"[{step}] {shape.label} VMs: {rounds} in-sync resync rounds ({POLICY_RESYNC}s interval) ...")
        switched = [
            policy(n, *group, resync_seconds=POLICY_RESYNC) for n, group in zip(names, groups, strict=True)
        ]
        _, _, switched_at = self.apply_until_ready(switched, generation=2)
        result["switchToShortIntervalSeconds"] = max(switched_at.values())
        result["resync"] = self.resync_rounds(shape)
        result["operatorMemoryKib"] = asdict(sample(self.operator.pid or 0))
        say(f"[{step}] {shape.label} VMs: deleting the policies (Orphan) ...")
        started = time.monotonic()
        self.kubectl(
            "delete", "vmclockpolicies", "--all", "--wait=true", "--timeout=300s", namespace=NAMESPACE
        )
        result["deleteAllSeconds"] = round(time.monotonic() - started, 2)
        return result

    def resync_rounds(self, shape: Shape) -> dict[str, Any]:
        """Whole in-sync bursts until every policy was checked about `resync_rounds` times."""
        wanted = self.scale.resync_rounds * shape.policies
        meter = BurstMeter(self.zstack_counts, ReconcileLog(self.operator.log_path, NAMESPACE), self.snapshot)
        window = meter.measure(
            lambda bursts: sum(len(b.policies) for b in bursts) >= wanted,
            timeout=(self.scale.resync_rounds + 3) * POLICY_RESYNC + 60,
        )
        return round_costs(window, shape.policies)

    def take_group(self, size: int) -> tuple[str, list[str]]:
        """``size`` unused VMs sharing one current track, and the other track as the policy's target."""
        for track in ("guest", "host"):
            with contextlib.suppress(RuntimeError):
                return OPPOSITE[track], self.pool.take(size, track=track)
        raise RuntimeError(f"the simulator has no {size} unused VMs with one track left; raise --vms")

    def processes(self) -> dict[str, dict[str, int]]:
        return {name: asdict(sample(pid)) for name, pid in self.pids().items()}


def object_sizes(obj: Obj) -> dict[str, Any]:
    """How big one policy's stored object is, and where the bytes are."""
    status = obj["status"]
    return {
        "statusBytes": compact_size(status),
        "statusVmsBytes": compact_size(status.get("vms", [])),
        "objectBytes": compact_size(obj),
        "managedFieldsBytes": compact_size(obj["metadata"].get("managedFields", [])),
        # Mostly kubectl's last-applied-configuration, a second copy of the spec.
        "annotationsBytes": compact_size(obj["metadata"].get("annotations", {})),
        "specBytes": compact_size(obj["spec"]),
        "withinStatusBudget": compact_size(status) <= STATUS_BUDGET,
    }


def round_costs(window: Window[Snapshot], policies: int) -> dict[str, Any]:
    """Costs per round, a round being every policy checked once (totals x policies / reconciles), and the
    bursts the rounds showed as (see bench_operator_rounds)."""
    rounds = window.reconciles / policies
    calls = window.calls
    writes = window.closed.writes - window.opened.writes
    before, after = window.opened.statuses, window.closed.statuses
    # For each status field, how many policies saw it change during the window.
    changed = Counter(
        path for name, status in after.items() for path in changed_paths(before.get(name), status)
    )

    def per_round(total: float) -> float:
        return round(total / rounds, 2)

    return {
        "windowSeconds": window.seconds,
        "reconciles": window.reconciles,
        "rounds": round(rounds, 2),
        "readsPerRound": per_round(reads(calls)),
        "callsPerRound": {api: per_round(n) for api, n in sorted(calls.items())},
        "zstackWritesPerRound": per_round(sum(calls[api] for api in WRITE_APIS)),
        "writesLogged": sum(b.writes_logged for b in window.bursts),
        "statusPatchesPerRound": per_round(writes[STATUS_PATCH]),
        "operatorCpuPerRound": per_round(window.closed.operator_cpu - window.opened.operator_cpu),
        "apiServerWrites": dict(sorted(writes.items())),
        "statusFieldsChanged": dict(sorted(changed.items())),
        "bursts": [burst_detail(b) for b in window.bursts],
    }


def burst_detail(burst: Burst) -> dict[str, Any]:
    """When a burst ran (seconds into the window), how many reconciles it had, what it read."""
    return {
        "at": round(burst.started, 1),
        "seconds": round(burst.ended - burst.started, 1),
        "reconciles": len(burst.policies),
        "distinctPolicies": len(set(burst.policies)),
        "reads": reads(burst.calls),
    }


def ratios(one: dict[str, Any], many: dict[str, Any]) -> dict[str, float | None]:
    """Many small policies over one big one, for the same number of VMs (issue 8's goals: apply within
    1.5x, reads per round within 2x)."""
    pairs = {
        "applyReadySeconds": (one["apply"]["readySeconds"]["last"], many["apply"]["readySeconds"]["last"]),
        "applyZStackReads": (one["apply"]["zstackReads"], many["apply"]["zstackReads"]),
        "applyOperatorCpu": (one["apply"]["cpuSeconds"]["operator"], many["apply"]["cpuSeconds"]["operator"]),
        "readsPerRound": (one["resync"]["readsPerRound"], many["resync"]["readsPerRound"]),
        "operatorCpuPerRound": (one["resync"]["operatorCpuPerRound"], many["resync"]["operatorCpuPerRound"]),
    }
    return {key: round(b / a, 2) if a else None for key, (a, b) in pairs.items()}


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help=f"smaller run: {QUICK}")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results to PATH")
    parser.add_argument(
        "--logs", type=Path, metavar="DIR", help="keep the operator and simulator logs in DIR"
    )
    return parser.parse_args(argv)


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)


def run(scale: Scale, logs: Path) -> dict[str, Any]:
    results: dict[str, Any] = {"scale": asdict(scale), "jobLatency": JOB_LATENCY, "cpus": os.cpu_count()}
    results["loadAverageBefore"] = [round(x, 2) for x in os.getloadavg()]  # other work skews the timings
    with contextlib.ExitStack() as stack:
        bench = Bench(scale, logs, stack)
        try:
            started = time.monotonic()
            bench.start()
            results["startupSeconds"] = round(time.monotonic() - started, 1)
            for step, shape in enumerate((scale.one, scale.many), start=1):
                results[shape.key] = bench.scenario(shape, step)
            results["ratios"] = ratios(results[scale.one.key], results[scale.many.key])
            results["processes"] = bench.processes()
        except Exception:
            with contextlib.suppress(AttributeError):  # the operator may not have been started yet
                say(f"failed; operator log tail:\n{bench.operator.log_tail()}")
            raise
        finally:
            say("tearing down ...")
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut the teardown short
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_stop)
    logs = args.logs or Path(tempfile.mkdtemp(prefix="vmclock-bench-"))
    started = time.monotonic()
    keep = args.logs is not None
    try:
        results = run(QUICK if args.quick else FULL, logs)
    except (KeyboardInterrupt, Stop):
        say("interrupted; everything was stopped.")
        return 130
    except Exception:
        keep = True
        say(f"logs kept in {logs}")
        raise
    finally:
        if not keep:
            shutil.rmtree(logs, ignore_errors=True)
    results["wallSeconds"] = round(time.monotonic() - started, 1)
    results["loadAverageAfter"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(table(results))
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
