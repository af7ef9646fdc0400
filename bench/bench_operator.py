"""Benchmark: the operator end to end, through a real kube-apiserver, against a simulator process.

Numbers, not pass/fail. Starts etcd + kube-apiserver (tests/controlplane), applies crds/, runs the simulator
(``--job-latency 0.05``) and the operator (``python -m vmclock run -A``) as real processes, then measures:
1. one policy selecting 1,000 VMs that all need a write: ``kubectl apply`` -> Ready=True for the current
   generation; SetVmClockTrack count; size of the stored ``.status`` and of the whole object;
2. 100 policies x 10 distinct VMs, all needing a write, applied with one ``kubectl apply`` of a List -> all
   Ready (run last, so the resync measurement below sees only the big policy);
3. ZStack calls per resync of the big policy once it is in sync (``resyncIntervalSeconds: 10``): reconciles
   are counted in the operator's log, calls in the simulator and in the operator's own metrics;
4. peak (VmHWM) and final (VmRSS) resident memory of the operator, the simulator and the control plane.
The ZStackConnection's resync interval is set to an hour so nothing but the measured policy resyncs.

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
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the control-plane tooling and the e2e harness live there

from bench_operator_probes import ReconcileLog, cpu_seconds, sample, zstack_calls  # noqa: E402
from bench_operator_watch import PolicyWatch  # noqa: E402
from controlplane import ControlPlane, Kubectl, require_binaries  # noqa: E402
from harness import (  # noqa: E402
    POLICY,
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
BIG = "big"
JOB_LATENCY = 0.05
CONNECTION_RESYNC = 3600
MEASURED_RESYNC = 10
OPPOSITE = {"guest": "host", "host": "guest"}
CONVERGE_TIMEOUT = 300.0
STATUS_BUDGET = 256 * 1024


@dataclass(frozen=True)
class Scale:
    vms: int
    big: int
    small_policies: int
    small_size: int
    resync_rounds: int


FULL = Scale(vms=2100, big=1000, small_policies=100, small_size=10, resync_rounds=3)
QUICK = Scale(vms=500, big=200, small_policies=20, small_size=10, resync_rounds=2)


class Stop(BaseException):
    """SIGTERM/SIGHUP: unwind like Ctrl-C (not an error, so no log tail is shown) and stop every child."""


def compact_size(value: Any) -> int:
    """Bytes of the value as compact JSON, the way the API server stores a custom resource in etcd."""
    return len(json.dumps(value, separators=(",", ":")).encode())


def ready_now(obj: Obj) -> bool:
    status = obj.get("status") or {}
    generation = obj["metadata"].get("generation")
    return status.get("observedGeneration") == generation and condition_is(obj, "Ready", "True")


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
            account_secret(SECRET, "admin", "password"),  # the simulator's default account
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

    def wait_ready(self, name: str) -> Obj:
        """The policy once Ready=True for its current generation (observed through a watch)."""
        seen = self.watch.until(
            lambda objs: name in objs and ready_now(objs[name]), timeout=CONVERGE_TIMEOUT, name=name
        )
        return seen[name]

    def apply_until_ready(self, objs: list[Obj]) -> tuple[dict[str, Obj], float, dict[str, float]]:
        """One ``kubectl apply`` of ``objs``, watched until every one is Ready for its current generation.

        kubectl runs on a side thread while the watch is already open, so a policy that turns Ready before
        kubectl has created the last object is timed when it does, not when kubectl returns. Returns the
        objects as last seen, the seconds kubectl took, and the seconds from the start to each Ready.
        """
        names = {obj["metadata"]["name"] for obj in objs}
        ready_at: dict[str, float] = {}
        with ThreadPoolExecutor(max_workers=1) as side:
            started = time.monotonic()

            def apply() -> float:
                self.kubectl.apply(objs, namespace=NAMESPACE)
                return time.monotonic() - started

            applying = side.submit(apply)

            def all_ready(seen: dict[str, Obj]) -> bool:
                if applying.done() and applying.exception() is not None:
                    applying.result()  # raises kubectl's error instead of waiting for the timeout
                elapsed = round(time.monotonic() - started, 2)
                for name in names - ready_at.keys():
                    if name in seen and ready_now(seen[name]):
                        ready_at[name] = elapsed
                return len(ready_at) == len(names)

            only = next(iter(names)) if len(names) == 1 else None
            seen = self.watch.until(all_ready, timeout=CONVERGE_TIMEOUT, name=only)
            return seen, round(applying.result(), 2), ready_at

    def pids(self) -> dict[str, int]:
        pids = {"operator": self.operator.pid, "simulator": self.sim.pid, **self.plane.pids}
        return {name: pid for name, pid in pids.items() if pid is not None}

    def cpu(self) -> dict[str, float]:
        used = {name: cpu_seconds(pid) for name, pid in self.pids().items()}
        # Reaped children are only the kubectl runs: the daemons are still running.
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        used["bench+kubectl"] = time.process_time() + children.ru_utime + children.ru_stime
        return used

    @contextlib.contextmanager
    def measured(self, into: dict[str, Any]) -> Iterator[None]:
        """Reset the simulator's counters, then record wall time, CPU per process and ZStack calls."""
        self.sim.admin.reset_stats()
        cpu_before, calls_before = self.cpu(), zstack_calls(self.operator.metrics_url)
        started = time.monotonic()
        yield
        into["seconds"] = round(time.monotonic() - started, 2)
        calls = zstack_calls(self.operator.metrics_url) - calls_before
        into["operatorCalls"] = {op: round(n) for op, n in sorted(calls.count.items())}
        into["zstackMeanMs"] = calls.mean_ms()
        stats = self.sim.admin.stats()
        into["zstackCalls"] = dict(sorted(stats.calls.items()))
        into["setVmClockTrack"] = stats.count("SetVmClockTrack")
        into["maxInFlight"] = stats.max_in_flight
        if stats.writes:
            into["writeSpanSeconds"] = round(stats.writes[-1].at - stats.writes[0].at, 2)
        into["cpuSeconds"] = {k: round(v - cpu_before.get(k, 0.0), 2) for k, v in self.cpu().items()}

    # ----------------------------------------------------------------- scenarios

    def single_policy(self) -> dict[str, Any]:
        count = self.scale.big
        say(f"[1] 1 policy x {count} VMs, every VM needs a write ...")
        uuids = self.pool.take(count, track="host")
        result: dict[str, Any] = {"vms": count}
        with self.measured(result):
            seen, applied, ready_at = self.apply_until_ready([policy(BIG, "guest", uuids)])
        result["readySeconds"], result["kubectlApplySeconds"] = ready_at[BIG], applied
        obj = seen[BIG]
        status = obj["status"]
        result["summary"] = status.get("summary")
        result["phases"] = dict(Counter(str(vm.get("phase")) for vm in status.get("vms", [])))
        result["statusBytes"] = compact_size(status)
        result["statusVmsBytes"] = compact_size(status.get("vms", []))
        result["objectBytes"] = compact_size(obj)
        result["managedFieldsBytes"] = compact_size(obj["metadata"].get("managedFields", []))
        # Mostly kubectl's last-applied-configuration, a second copy of the spec.
        result["annotationsBytes"] = compact_size(obj["metadata"].get("annotations", {}))
        result["specBytes"] = compact_size(obj["spec"])
        result["withinStatusBudget"] = result["statusBytes"] <= STATUS_BUDGET
        return result

    def resync_cost(self) -> dict[str, Any]:
        """Calls per drift check of the in-sync big policy.

        Setting ``resyncIntervalSeconds`` is a spec change, so it first causes one handler reconcile; the
        window opens only after that one has logged its end, and closes as soon as the chosen number of
        further reconciles have logged theirs, so no half-finished reconcile is counted.
        """
        rounds = self.scale.resync_rounds
        say(f"[3] ZStack calls per resync of the in-sync policy ({rounds} resyncs of {MEASURED_RESYNC}s) ...")
        log = ReconcileLog(self.operator.log_path, NAMESPACE, BIG)
        before_patch = log.offset()
        self.tenant.merge_patch(POLICY, BIG, {"spec": {"resyncIntervalSeconds": MEASURED_RESYNC}})
        generation = self.wait_ready(BIG)["metadata"]["generation"]
        wait_for(
            lambda: log.since(before_patch),
            lambda seen: any(r.generation == generation for r in seen),
            timeout=60,
            interval=0.2,
            what="the patch's reconcile in the operator log",
        )
        sync_before = self.tenant.policy(BIG)["status"].get("lastSyncTime")
        offset = log.offset()
        result: dict[str, Any] = {"resyncIntervalSeconds": MEASURED_RESYNC}
        with self.measured(result):
            reconciles = wait_for(
                lambda: log.since(offset),
                lambda seen: len(seen) >= rounds,
                timeout=rounds * MEASURED_RESYNC + 60,
                interval=0.05,
                what=f"{rounds} resync reconciles in the operator log",
            )
        result["reconciles"] = len(reconciles)
        result["writesLogged"] = sum(r.writes for r in reconciles)
        result["callsPerReconcile"] = {
            k: round(v / len(reconciles), 2) for k, v in result["zstackCalls"].items()
        }
        result["operatorMetricsPerReconcile"] = {
            k: round(v / len(reconciles), 2) for k, v in result["operatorCalls"].items()
        }
        result["lastSyncTimeAdvanced"] = self.tenant.policy(BIG)["status"].get("lastSyncTime") != sync_before
        # Back to a long interval, so the big policy stays (its memory counts) but stops competing with [2].
        self.tenant.merge_patch(POLICY, BIG, {"spec": {"resyncIntervalSeconds": CONNECTION_RESYNC}})
        self.wait_ready(BIG)
        return result

    def many_policies(self) -> dict[str, Any]:
        count, size = self.scale.small_policies, self.scale.small_size
        say(f"[2] {count} policies x {size} VMs, one kubectl apply of a List ...")
        names = [f"small-{i:03d}" for i in range(count)]
        objs = [policy(name, *self.take_group(size)) for name in names]
        result: dict[str, Any] = {"policies": count, "vmsPerPolicy": size}
        with self.measured(result):
            _, applied, ready_at = self.apply_until_ready(objs)
        times = sorted(ready_at.values())
        result["kubectlApplySeconds"] = applied
        result["readySeconds"] = {
            "first": times[0],
            "p50": times[len(times) // 2],
            "p90": times[int(len(times) * 0.9)],
            "last": times[-1],
        }
        return result

    def take_group(self, size: int) -> tuple[str, list[str]]:
        """``size`` unused VMs sharing one current track, and the other track as the policy's target."""
        for track in ("guest", "host"):
            with contextlib.suppress(RuntimeError):
                return OPPOSITE[track], self.pool.take(size, track=track)
        raise RuntimeError(f"the simulator has no {size} unused VMs with one track left; raise --vms")

    def processes(self) -> dict[str, dict[str, int]]:
        return {name: asdict(sample(pid)) for name, pid in self.pids().items()}


# --------------------------------------------------------------------------- report


def table(results: dict[str, Any]) -> str:
    single, resync, many = results["singlePolicy"], results["resync"], results["manyPolicies"]
    rows = [
        ("[1] policies x VMs (all need a write)", f"1 x {single['vms']}"),
        (
            "    apply -> Ready",
            f"{single['readySeconds']} s (kubectl apply {single['kubectlApplySeconds']} s)",
        ),
        ("    SetVmClockTrack calls", str(single["setVmClockTrack"])),
        ("    first..last write", f"{single.get('writeSpanSeconds', '-')} s"),
        ("    phases in .status.vms", fmt_calls(single["phases"])),
        ("    .status size", f"{single['statusBytes']:,} B (budget {STATUS_BUDGET:,})"),
        (
            "    whole object size",
            f"{single['objectBytes']:,} B (managedFields {single['managedFieldsBytes']:,}, "
            f"annotations {single['annotationsBytes']:,}, spec {single['specBytes']:,})",
        ),
        ("    all ZStack calls", fmt_calls(single["zstackCalls"])),
        ("    CPU seconds", fmt_calls(single["cpuSeconds"])),
        ("    mean ZStack call latency (ms)", fmt_calls(single["zstackMeanMs"])),
        ("[2] policies x VMs (all need a write)", f"{many['policies']} x {many['vmsPerPolicy']}"),
        (
            "    apply (List) -> all Ready",
            f"{many['readySeconds']['last']} s (kubectl apply {many['kubectlApplySeconds']} s)",
        ),
        (
            "    Ready after (first/p50/p90/last)",
            " / ".join(f"{v}" for v in many["readySeconds"].values()) + " s",
        ),
        ("    SetVmClockTrack calls", str(many["setVmClockTrack"])),
        ("    all ZStack calls", fmt_calls(many["zstackCalls"])),
        ("    CPU seconds", fmt_calls(many["cpuSeconds"])),
        ("    mean ZStack call latency (ms)", fmt_calls(many["zstackMeanMs"])),
        ("[3] resync of in-sync policy", f"{resync['reconciles']} reconciles in {resync['seconds']} s"),
        ("    ZStack calls per reconcile", fmt_calls(resync["callsPerReconcile"])),
        ("    operator metrics per reconcile", fmt_calls(resync["operatorMetricsPerReconcile"])),
        ("    writes logged in the window", str(resync["writesLogged"])),
        ("    lastSyncTime advanced", str(resync["lastSyncTimeAdvanced"])),
    ]
    for name, proc in results["processes"].items():
        peak, now = proc["peak_rss_kib"] / 1024, proc["rss_kib"] / 1024
        rows.append((f"[4] {name} RSS peak / end", f"{peak:.1f} / {now:.1f} MiB, {proc['threads']} threads"))
    rows.append(
        ("load average before / after", f"{results['loadAverageBefore']} / {results['loadAverageAfter']}")
    )
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def fmt_calls(calls: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in calls.items()) or "-"


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
            steps: list[tuple[str, Callable[[], Any]]] = [
                ("singlePolicy", bench.single_policy),
                ("resync", bench.resync_cost),
                ("manyPolicies", bench.many_policies),
                ("processes", bench.processes),
            ]
            for key, step in steps:
                results[key] = step()
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
