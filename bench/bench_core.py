"""Benchmark of the core loop (issue 14): the product's figures, measured end to end, for one or more
operator source trees side by side (e.g. before and after a change), in one run.

Numbers, not pass/fail; each goal is printed beside its number. Starts etcd + kube-apiserver
(tests/controlplane), applies crds/, runs two simulators (``--job-latency 0.2``, and a slow one with
``--job-latency 20``) and, per part and per tree, a fresh operator (``python -m vmclock run -A`` with
``PYTHONPATH`` set to the tree's ``operator/`` directory), each in its own namespace with a
ZStackConnection of ``maxConcurrentRequests: 32``. Parts run one after the other, and each part for every
tree before the next part, so the machine's load drifts over both trees alike:

1. restore: 1 policy x 1,000 VMs (every VM needs a write), ``deletionPolicy: Restore``: apply -> Ready,
   ZStack reads and writes; an in-sync resync round (reads, writes, status PATCHes); then delete -> every
   VM back (the simulator's own write time stamps) and the object gone (finalizer removed).
2. many: 1 selector policy x 10,000 VMs (a user tag; the CRD lists at most 1,000 vmUuids), then 1,000
   policies x 10 VMs on the same VMs (every VM needs a write in both): apply -> all Ready, ZStack reads per
   in-sync round, the slowest liveness answer during the apply (the event-loop stall bound, see
   bench_core_probes), and the operator's peak RSS (VmHWM).
3. beside: the 1,000-VM policy's apply -> Ready alone, then again while a second connection's policy
   waits on 20 s jobs of a second simulator.
4. restart: 300 in-sync policies x 10 VMs; the operator is stopped, 30 VMs (in 30 policies) drift, it is
   started again: seconds from the start (and from liveness) until all 30 are written back, ZStack reads.

    .venv/bin/python bench/bench_core.py [--quick] [--tree NAME=DIR ...] [--parts 1,2,3,4]
        [--profile NAME] [--json PATH] [--logs DIR]

``--tree`` defaults to this checkout's operator/. ``--profile NAME`` records tree NAME's operator with
py-spy during the part 2 apply of the many small policies and during part 4's restart (from the time its
liveness answers until every drifted VM is written back). The last line of stdout is the results as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the control-plane tooling and the e2e harness live there

from bench_cluster import apply_until_ready, snapshot  # noqa: E402
from bench_core_probes import (  # noqa: E402
    OPPOSITE,
    LoopStallProbe,
    every,
    idle_stalls,
    set_tracks,
    wait_written,
)
from bench_core_profile import Profile, summarize  # noqa: E402
from bench_core_report import table  # noqa: E402
from bench_operator import round_costs  # noqa: E402
from bench_operator_probes import ReconcileLog, cpu_seconds, sample  # noqa: E402
from bench_operator_rounds import ReconcileWindow, reads  # noqa: E402
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
from harness.objects import API_VERSION  # noqa: E402

JOB_LATENCY, SLOW_JOB_LATENCY = 0.2, 20.0
CONCURRENCY = 32
CONNECTION_RESYNC = 3600  # no connection-wide round inside a measurement
ROUND_SECONDS = 10  # the CRD's minimum resync interval
TIMEOUT = 900.0
TREE_NAME = re.compile(r"[a-z][a-z0-9]{0,20}")
MANY_TAG = "bench-many"
SECRET, FAST, SLOW = "zstack-credentials", "default", "slow"
GOALS = {
    "restore.applySeconds": "<= 2",
    "restore.round.readsPerRound": "<= 10",
    "restore.round.zstackWritesPerRound": "0",
    "restore.round.statusPatchesPerRound": "0",
    "restore.restoreSeconds": "<= 2",
    "many.ratio.applySeconds": "<= 1.5x",
    "many.ratio.readsPerRound": "<= 2x",
    "many.peakRssMiB": "<= 200",
    "beside.ratio": "<= 1.5x",
    "restart.correctedSeconds": "<= 10",
    "restart.reads": "<= 20",
}


@dataclass(frozen=True)
class Scale:
    restore_vms: int  # part 1 (and part 3's fast policy)
    small_policies: int  # part 2: this many policies of `small_size` VMs, against one of all of them
    small_size: int
    slow_vms: int  # part 3: the slow connection's policy
    restart_policies: int  # part 4: in-sync policies of `small_size` VMs
    drifted: int
    rounds: int  # in-sync rounds measured per shape

    @property
    def fleet(self) -> int:
        """VMs on the main simulator: disjoint sets for parts 1, 2 and 4 (part 3 reuses part 1's)."""
        return self.restore_vms + (self.small_policies + self.restart_policies) * self.small_size


FULL = Scale(
    restore_vms=1000,
    small_policies=1000,
    small_size=10,
    slow_vms=200,
    restart_policies=300,
    drifted=30,
    rounds=2,
)
QUICK = Scale(
    restore_vms=200, small_policies=100, small_size=10, slow_vms=50, restart_policies=60, drifted=10, rounds=1
)


@dataclass(frozen=True)
class Tree:
    """An operator source tree: `source` is the directory that holds the ``vmclock`` package."""

    name: str
    source: Path


@dataclass(kw_only=True)
class TreeOperator(OperatorProcess):
    """The operator of one tree: the benchmark's own virtualenv, the tree's ``vmclock`` first on the path."""

    source: Path

    def environment(self) -> dict[str, str]:
        return {**super().environment(), "PYTHONPATH": str(self.source)}


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()


@dataclass
class Lab:
    """What every part and tree share: the control plane, the simulators, and which VMs each part uses."""

    scale: Scale
    logs: Path
    stack: contextlib.ExitStack
    groups: dict[str, list[str]] = field(default_factory=dict)
    tagged: bool = False

    def start(self) -> None:
        say("starting kube-apiserver + etcd ...")
        self.plane = self.stack.enter_context(ControlPlane(require_binaries()))
        # Applying or deleting 1,000 policies under load can take longer than kubectl's default bound.
        self.kubectl = Kubectl(self.plane.kubectl().binary, self.plane.kubeconfig, timeout=TIMEOUT + 60)
        crds = self.kubectl("apply", "--server-side", "-f", str(REPO / "crds"), "-o", "name").stdout.split()
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", *crds)
        say(
            f"starting the simulators ({self.scale.fleet:,} VMs at {JOB_LATENCY}s jobs; "
            f"{self.scale.slow_vms} at {SLOW_JOB_LATENCY}s) ..."
        )
        self.sim = self.stack.enter_context(
            SimulatorProcess(
                log_path=self.logs / "simulator.log", vms=self.scale.fleet, job_latency=JOB_LATENCY
            )
        )
        self.slow = self.stack.enter_context(
            SimulatorProcess(
                log_path=self.logs / "slow-simulator.log",
                vms=self.scale.slow_vms,
                seed=1,
                job_latency=SLOW_JOB_LATENCY,
            )
        )
        pool = VmPool(self.sim.admin.vms())
        s = self.scale
        self.groups["restore"] = pool.take(s.restore_vms)
        self.groups["many"] = pool.take(s.small_policies * s.small_size)
        # Part 4's policies want both tracks; set_tracks puts their VMs in sync before each tree's turn.
        for i in range(s.restart_policies):
            self.groups[f"restart-{i:03d}-{('guest', 'host')[i % 2]}"] = pool.take(s.small_size)

    @contextlib.contextmanager
    def session(self, tree: Tree, part: str) -> Iterator[Session]:
        """A namespace with the fast connection, and a fresh operator of `tree`. What the part created is
        deleted with the operator still running, so finalizers are handled, and later operators (which
        watch every namespace) find nothing left. The namespace itself stays: the bench's control plane
        has no namespace controller to empty it."""
        namespace = f"{tree.name}-{part}"
        self.kubectl("create", "namespace", namespace)
        tenant = Tenant(self.kubectl, namespace)
        tenant.apply(
            account_secret(SECRET, "admin", "password", allow=self.sim.endpoint),
            connection(
                FAST,
                self.sim.endpoint,
                SECRET,
                resync_seconds=CONNECTION_RESYNC,
                maxConcurrentRequests=CONCURRENCY,
            ),
        )
        operator = TreeOperator(
            log_path=self.logs / f"{namespace}-operator.log",
            kubeconfig=self.plane.kubeconfig,
            source=tree.source,
        )
        operator.start()
        try:
            wait_connection(tenant, FAST)
            yield Session(self, namespace, tenant, operator, PolicyWatch(self.plane.kubeconfig, namespace))
            for kind in ("vmclockpolicies", "zstackconnections", "secrets"):
                self.delete_all(kind, namespace)
        finally:
            operator.stop()

    def tag_many(self) -> None:
        """Tag part 2's VMs (once) so that one selector policy can take all of them."""
        if self.tagged:
            return
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda uuid: self.sim.admin.add_user_tag(uuid, MANY_TAG), self.groups["many"]))
        self.tagged = True

    def delete_all(self, kind: str, namespace: str) -> None:
        self.kubectl("delete", kind, "--all", "--wait=true", f"--timeout={TIMEOUT:.0f}s", namespace=namespace)


def wait_connection(tenant: Tenant, name: str) -> None:
    wait_for(
        lambda: tenant.connection(name),
        lambda c: condition_is(c, "Ready", "True"),
        timeout=120,
        what=f"ZStackConnection {name} Ready",
    )


@dataclass
class Session:
    lab: Lab
    namespace: str
    tenant: Tenant
    operator: TreeOperator
    watch: PolicyWatch

    @property
    def pid(self) -> int:
        assert self.operator.pid is not None
        return self.operator.pid

    def apply(self, objs: list[Obj], *, generation: int = 1) -> tuple[dict[str, Obj], dict[str, float]]:
        seen, _, ready_at = apply_until_ready(
            self.lab.kubectl,
            self.watch,
            self.namespace,
            objs,
            generation=generation,
            timeout=TIMEOUT,
            server_side=True,
        )
        return seen, ready_at

    def measured_apply(self, objs: list[Obj], profile: Path | None = None) -> dict[str, Any]:
        """Apply -> every policy Ready, with the ZStack calls it took and the liveness answers meanwhile."""
        sim = self.lab.sim.admin
        sim.reset_stats()
        cpu = cpu_seconds(self.pid)
        with contextlib.ExitStack() as around:
            probe = around.enter_context(LoopStallProbe(self.operator.liveness_url))
            if profile is not None:
                around.enter_context(Profile(self.pid, profile))
            _, ready_at = self.apply(objs)
        calls = Counter(sim.stats().calls)
        times = sorted(ready_at.values())
        return {
            "seconds": times[-1],
            "p50Seconds": times[len(times) // 2],
            "reads": reads(calls),
            "writes": calls["SetVmClockTrack"],
            "cpuSeconds": round(cpu_seconds(self.pid) - cpu, 1),  # the operator's: less load-bound than time
            "liveness": asdict(probe.result()),
        }

    def rounds(self, objs: list[Obj], rounds: int) -> dict[str, Any]:
        """Switch the policies to the shortest resync interval, then measure in-sync rounds: the calls made
        while `rounds` x policies reconciles were logged (bench_operator_rounds.ReconcileWindow), so the
        figure is the same whether rounds leave quiet gaps (one policy) or run back to back (1,000)."""
        for obj in objs:
            obj["spec"]["resyncIntervalSeconds"] = ROUND_SECONDS
        self.apply(objs, generation=2)
        sim = self.lab.sim.admin
        sim.reset_stats()  # the stats keep every write's time stamp: start the polled window empty
        meter = ReconcileWindow(
            lambda: Counter(sim.stats().calls),
            ReconcileLog(self.operator.log_path, self.namespace),
            lambda: snapshot(self.lab.plane, self.lab.kubectl, self.namespace, self.pid),
        )
        window = meter.measure(rounds * len(objs), timeout=(rounds + 3) * ROUND_SECONDS + TIMEOUT)
        costs = round_costs(window, len(objs))
        kept = ("rounds", "readsPerRound", "callsPerRound", "zstackWritesPerRound", "statusPatchesPerRound")
        return {k: costs[k] for k in kept}

    def delete_policies(self) -> None:
        self.lab.delete_all("vmclockpolicies", self.namespace)

    def peak_rss_mib(self) -> float:
        return round(sample(self.pid).peak_rss_kib / 1024, 1)


def names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i:04d}" for i in range(count)]


# --------------------------------------------------------------------------- parts


def part_restore(lab: Lab, tree: Tree, _: Path | None) -> dict[str, Any]:
    uuids = lab.groups["restore"]
    set_tracks(lab.sim.admin, every(uuids, "host"))
    with lab.session(tree, "restore") as s:
        objs = [policy("fleet", "guest", uuids, deletion="Restore")]
        result: dict[str, Any] = {"apply": s.measured_apply(objs), "round": s.rounds(objs, lab.scale.rounds)}
        lab.sim.admin.reset_stats()
        since = time.time()
        lab.kubectl("delete", "vmclockpolicy", "fleet", "--wait=false", namespace=s.namespace)
        gone = wait_written(
            lab.sim.admin,
            every(uuids, "host"),
            since,
            timeout=TIMEOUT,
            also=lambda: s.tenant.find("vmclockpolicy", "fleet") is None,
        )
        result["restore"] = {
            "seconds": gone.seconds,
            "vmsBackSeconds": gone.written_seconds,
            "objectGoneSeconds": gone.also_seconds,
            "reads": gone.reads,
            "writes": gone.writes,
        }
        result["peakRssMiB"] = s.peak_rss_mib()
        return result


def selector_policy(name: str, track: str, tag: str) -> Obj:
    """A policy over every VM carrying `tag`: the CRD lists at most 1,000 vmUuids, so 10,000 VMs are
    selected (design.md's selector policies), and the selection costs its bulk reads in the figures."""
    spec = {"track": track, "selector": {"userTags": [tag]}}
    return {"apiVersion": API_VERSION, "kind": "VmClockPolicy", "metadata": {"name": name}, "spec": spec}


def part_many(lab: Lab, tree: Tree, profile: Path | None) -> dict[str, Any]:
    uuids, size = lab.groups["many"], lab.scale.small_size
    lab.tag_many()
    set_tracks(lab.sim.admin, every(uuids, "host"))
    shapes: list[tuple[str, list[Obj]]] = [
        ("one", [selector_policy("big", "guest", MANY_TAG)]),
        (
            "many",
            [
                policy(name, "host", uuids[i * size : (i + 1) * size])
                for i, name in enumerate(names("small", len(uuids) // size))
            ],
        ),
    ]
    with lab.session(tree, "many") as s:
        result: dict[str, Any] = {"idleLiveness": asdict(idle_stalls(s.operator.liveness_url))}
        for key, objs in shapes:
            say(f"  {tree.name}: {len(objs)} x {len(uuids) // len(objs):,} VMs: apply -> Ready ...")
            shape = {
                "policies": len(objs),
                "apply": s.measured_apply(objs, profile if key == "many" else None),
            }
            say(f"  {tree.name}: {len(objs)} policies: {lab.scale.rounds} in-sync rounds ...")
            shape["round"] = s.rounds(objs, lab.scale.rounds)
            s.delete_policies()
            result[key] = shape
        result["peakRssMiB"] = s.peak_rss_mib()
    one, many = result["one"], result["many"]
    result["ratio"] = {
        "applySeconds": ratio(many["apply"]["seconds"], one["apply"]["seconds"]),
        "readsPerRound": ratio(many["round"]["readsPerRound"], one["round"]["readsPerRound"]),
    }
    if profile is not None:
        result["profile"] = summarize(profile)
    return result


def part_beside(lab: Lab, tree: Tree, _: Path | None) -> dict[str, Any]:
    uuids = lab.groups["restore"]
    slow_uuids = [vm.uuid for vm in lab.slow.admin.vms()]
    set_tracks(lab.slow.admin, every(slow_uuids, "host"))
    fast_policy = [policy("fast", "guest", uuids)]
    with lab.session(tree, "beside") as s:
        s.tenant.apply(
            account_secret("slow-credentials", "admin", "password", allow=lab.slow.endpoint),
            connection(SLOW, lab.slow.endpoint, "slow-credentials", resync_seconds=CONNECTION_RESYNC),
        )
        wait_connection(s.tenant, SLOW)
        set_tracks(lab.sim.admin, every(uuids, "host"))
        alone = s.measured_apply(fast_policy)
        s.delete_policies()
        set_tracks(lab.sim.admin, every(uuids, "host"))
        lab.slow.admin.reset_stats()
        s.lab.kubectl.apply(
            [policy("slow", "guest", slow_uuids, connection_name=SLOW)], namespace=s.namespace
        )
        wait_for(
            lambda: lab.slow.admin.stats().max_in_flight,
            lambda n: n > 0,
            timeout=120,
            what="the slow connection's writes in flight",
        )
        beside = s.measured_apply(fast_policy)
        slow_writes_done = len(lab.slow.admin.stats().writes)
        return {
            "alone": alone,
            "beside": beside,
            "slowWritesDoneMeanwhile": slow_writes_done,
            "ratio": ratio(beside["seconds"], alone["seconds"]),
        }


def part_restart(lab: Lab, tree: Tree, profile: Path | None) -> dict[str, Any]:
    groups = {name: uuids for name, uuids in lab.groups.items() if name.startswith("restart-")}
    wanted = {uuid: name.rsplit("-", 1)[1] for name, uuids in groups.items() for uuid in uuids}
    set_tracks(lab.sim.admin, wanted)
    objs = [policy(name, name.rsplit("-", 1)[1], uuids) for name, uuids in groups.items()]
    with lab.session(tree, "restart") as s:
        say(f"  {tree.name}: {len(objs)} in-sync policies: apply -> all Ready ...")
        applied = s.measured_apply(objs)
        s.operator.stop()
        drifted = {uuids[0]: wanted[uuids[0]] for uuids in list(groups.values())[: lab.scale.drifted]}
        set_tracks(lab.sim.admin, {uuid: OPPOSITE[track] for uuid, track in drifted.items()})
        lab.sim.admin.reset_stats()
        since, started = time.time(), time.monotonic()
        s.operator.start()
        live = round(time.monotonic() - started, 2)
        with Profile(s.pid, profile) if profile is not None else contextlib.nullcontext():
            corrected = wait_written(lab.sim.admin, drifted, since, timeout=TIMEOUT)
        result = {
            "policies": len(objs),
            "applySeconds": applied["seconds"],
            "applyReads": applied["reads"],
            "liveSeconds": live,
            "correctedSeconds": corrected.seconds,
            "correctedAfterLiveSeconds": round(corrected.seconds - live, 2),
            "reads": corrected.reads,
            "writes": corrected.writes,
            "callsUntilCorrected": dict(sorted(corrected.calls.items())),
        }
        if profile is not None:
            result["profile"] = summarize(profile)
        return result


def ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 2) if denominator else None


Part = Callable[[Lab, Tree, Path | None], dict[str, Any]]
PARTS: dict[str, Part] = {"1": part_restore, "2": part_many, "3": part_beside, "4": part_restart}
PART_KEYS = {"1": "restore", "2": "many", "3": "beside", "4": "restart"}
PROFILED = frozenset({"many", "restart"})  # the parts `--profile` records: part 2's apply, part 4's restart


# --------------------------------------------------------------------------- main


def parse_tree(text: str) -> Tree:
    name, sep, directory = text.partition("=")
    source = Path(directory).resolve()
    if not sep or not TREE_NAME.fullmatch(name) or not (source / "vmclock" / "__init__.py").is_file():
        raise argparse.ArgumentTypeError(
            "--tree wants NAME=DIR, NAME lowercase letters and digits (it names namespaces), DIR holding "
            f"the vmclock package (e.g. after=operator); got {text!r}"
        )
    return Tree(name, source)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help=f"smaller run: {QUICK}")
    parser.add_argument("--tree", type=parse_tree, action="append", metavar="NAME=DIR", dest="trees")
    parser.add_argument("--parts", default="1,2,3,4", help="which parts, comma-separated (default 1,2,3,4)")
    parser.add_argument("--profile", metavar="NAME", help="py-spy the operator of tree NAME (parts 2, 4)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results to PATH")
    parser.add_argument("--logs", type=Path, metavar="DIR", help="keep the logs (and the profile) in DIR")
    args = parser.parse_args(argv)
    args.trees = args.trees or [Tree("this", REPO / "operator")]
    tree_names = [t.name for t in args.trees]
    if len(set(tree_names)) != len(tree_names):
        parser.error(f"--tree names must differ; got {tree_names}")
    args.parts = [p.strip() for p in args.parts.split(",")]
    if unknown := [p for p in args.parts if p not in PARTS]:
        parser.error(f"--parts: unknown {unknown}; allowed: {', '.join(PARTS)}")
    if args.profile is not None and args.profile not in tree_names:
        parser.error(f"--profile {args.profile!r}: not a --tree name; allowed: {', '.join(tree_names)}")
    return args


def run(args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    scale = QUICK if args.quick else FULL
    results: dict[str, Any] = {
        "scale": asdict(scale),
        "trees": [[t.name, str(t.source)] for t in args.trees],  # a list: the columns keep their order
        "cpus": os.cpu_count(),
        "goals": GOALS,
        "uptime": {"start": uptime()},
        "partSeconds": {},
    }
    with contextlib.ExitStack() as stack:
        lab = Lab(scale, logs, stack)
        lab.start()
        for number in args.parts:
            key = PART_KEYS[number]
            for tree in args.trees:
                say(f"part {number} ({key}), tree {tree.name} ... [{uptime()}]")
                profiled = args.profile == tree.name and key in PROFILED
                profile = logs / f"profile-{key}-{tree.name}.raw" if profiled else None
                started = time.monotonic()
                measured = PARTS[number](lab, tree, profile)
                measured["uptime"] = uptime()
                results.setdefault(tree.name, {})[key] = measured
                results["partSeconds"][f"{key}/{tree.name}"] = round(time.monotonic() - started, 1)
                if args.json:  # what was measured so far survives a run cut short
                    args.json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        say("tearing down ...")
    results["uptime"]["end"] = uptime()
    return results


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)  # unwind, so every child is stopped


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    logs = args.logs or Path(tempfile.mkdtemp(prefix="vmclock-bench-core-"))
    keep = args.logs is not None
    started = time.monotonic()
    try:
        results = run(args, logs)
    except Exception:
        keep = True
        say(f"failed; logs kept in {logs}")
        raise
    finally:
        if not keep:
            shutil.rmtree(logs, ignore_errors=True)
    results["wallSeconds"] = round(time.monotonic() - started, 1)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(table(results))
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
