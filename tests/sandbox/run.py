"""``make dev``: a complete local vmclock installation in one foreground command.

Starts a real kube-apiserver + etcd + kube-controller-manager (a deleted namespace is emptied and removed,
and what a deleted policy owned is garbage-collected, as in a cluster), the ZStack simulator with a seeded
fleet, installs the CRDs, runs the operator as a process, applies ``examples/`` (pointed at the
simulator), waits until the policies are Ready and prints what to type next.  It then stays in the
foreground; Ctrl-C (or SIGTERM/SIGHUP) tears everything down in reverse order and leaves nothing running.
Every child also carries ``PR_SET_PDEATHSIG``, so even a SIGKILL of this process takes them along.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import IO

from controlplane import (
    ControlPlane,
    ControlPlaneError,
    Kubectl,
    KubectlError,
    MissingBinariesError,
    require_binaries,
)
from harness import POLICY, Obj, OperatorError, OperatorProcess, SimulatorError, SimulatorProcess

from . import examples

REPO = Path(__file__).resolve().parents[2]
DEFAULT_STATE_DIR = Path("/tmp/vmclock-sandbox")
DEFAULT_NAMESPACE = "vmclock-demo"
DEFAULT_SIM_PORT = 18080
READY_MARKER = "Stop: press Ctrl-C"
"""Starts the banner's last line: once printed, everything is up (tests wait for it)."""


class Stop(Exception):
    """A termination signal arrived: unwind and tear down."""


class SandboxError(RuntimeError):
    """A start-up step failed; the message says which and where its log is."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.sandbox",
        description="Local vmclock sandbox: control plane, ZStack simulator, operator and examples/.",
        epilog="Through make: make dev SANDBOX_ARGS='--vms 500 --sim-port 0'",
    )
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="kubeconfig, kubectl, logs")
    parser.add_argument("--namespace", default=DEFAULT_NAMESPACE, help="where examples/ is applied")
    parser.add_argument("--vms", type=int, default=300, help="simulated ZStack VMs")
    parser.add_argument("--seed", type=int, default=0, help="simulator seed (same seed, same fleet)")
    parser.add_argument("--sim-port", type=int, default=DEFAULT_SIM_PORT, help="simulator port (0: any free)")
    parser.add_argument("--ready-timeout", type=float, default=180.0, help="seconds to wait for Ready")
    parser.add_argument(
        "--exit-after-ready", action="store_true", help="tear down as soon as everything is Ready (for tests)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGINT too: Python raises KeyboardInterrupt on it only if it was not ignored when the process started,
    # and a shell without job control starts a background job (`make dev &` in a script or CI step) with
    # SIGINT ignored.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_stop)
    args.state_dir.mkdir(parents=True, exist_ok=True)
    code = 0
    try:
        with _exclusive(args.state_dir), contextlib.ExitStack() as teardown:
            try:
                code = Sandbox(args, teardown).run()
            finally:
                _say("tearing down ...")
                _ignore_signals()  # a second Ctrl-C must not interrupt the teardown half-way
    except (KeyboardInterrupt, Stop):
        pass
    except (SandboxError, ControlPlaneError, KubectlError, SimulatorError, OperatorError) as error:
        _say(f"error: {error}")
        code = 1
    _say("stopped; nothing is left running.")
    return code


class Sandbox:
    """The start-up steps in order; each registers its own teardown on ``teardown`` as soon as it started."""

    def __init__(self, args: argparse.Namespace, teardown: contextlib.ExitStack) -> None:
        self.args = args
        self.state: Path = args.state_dir
        self.teardown = teardown
        self.kubeconfig = self.state / "kubeconfig"

    def run(self) -> int:
        for stale in ("operator.log", "simulator.log", "kubeconfig"):
            (self.state / stale).unlink(missing_ok=True)
        objs = examples.load(REPO / "examples")
        plane = self.start_control_plane()
        kubectl = Kubectl(plane.kubectl_path, self.kubeconfig)
        simulator = self.start_simulator(examples.credentials(objs))
        _say("installing the CRDs ...")
        crds = kubectl("apply", "--server-side", "-f", str(REPO / "crds"), "-o", "name").stdout.split()
        kubectl("wait", "--for=condition=Established", "--timeout=60s", *crds)
        operator = self.start_operator()
        applied = examples.rewrite(objs, simulator.endpoint, simulator.admin.vms())
        self.apply_examples(kubectl, applied, operator)
        _say(self.banner(plane, simulator, operator, applied))
        if self.args.exit_after_ready:
            return 0
        return _watch(simulator, operator)

    def start_control_plane(self) -> ControlPlane:
        _say("starting kube-apiserver + etcd + kube-controller-manager ...")
        try:
            plane = ControlPlane(require_binaries()).start()
        except MissingBinariesError as error:
            raise SandboxError(f"{error}\n(make dev builds them via 'make controlplane')") from error
        self.teardown.callback(plane.stop)
        # Stable paths for the user, whatever the control plane's run directory is called.
        shutil.copyfile(plane.kubeconfig, self.kubeconfig)
        self.kubeconfig.chmod(0o600)
        self.teardown.callback(self.kubeconfig.unlink, missing_ok=True)
        link = self.state / "bin" / "kubectl"
        link.parent.mkdir(exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(plane.kubectl_path)
        _say(f"  API server {plane.server} (up in {plane.startup_seconds or 0:.1f}s)")
        return plane

    def start_simulator(self, creds: examples.Credentials) -> SimulatorProcess:
        _say(f"starting the ZStack simulator ({self.args.vms} VMs) ...")
        simulator = SimulatorProcess(
            log_path=self.state / "simulator.log",
            vms=self.args.vms,
            seed=self.args.seed,
            port=self.args.sim_port,
            accounts=creds.accounts,
            access_keys=creds.access_keys,
        )
        simulator.start()
        self.teardown.callback(simulator.stop)
        return simulator

    def start_operator(self) -> OperatorProcess:
        _say("starting the operator ...")
        operator = OperatorProcess(
            log_path=self.state / "operator.log", kubeconfig=self.kubeconfig, pod_name="vmclock-sandbox"
        )
        operator.start()
        self.teardown.callback(operator.stop)
        return operator

    def apply_examples(self, kubectl: Kubectl, applied: list[Obj], operator: OperatorProcess) -> None:
        ns, timeout = self.args.namespace, self.args.ready_timeout
        _say(f"applying examples/ to namespace {ns} and waiting for the policies to be Ready ...")
        kubectl("create", "namespace", ns)
        kubectl.apply(applied, namespace=ns)
        wait = ("wait", "--for=condition=Ready", POLICY, "--all", f"--timeout={timeout:.0f}s")
        waited = kubectl(*wait, namespace=ns, check=False)
        if waited.returncode != 0:
            raise SandboxError(
                f"policies not Ready within {timeout:.0f}s: {waited.stderr.strip()}\n"
                f"operator log: {operator.log_path}\n{operator.log_tail()}"
            )

    def banner(
        self, plane: ControlPlane, simulator: SimulatorProcess, operator: OperatorProcess, applied: list[Obj]
    ) -> str:
        ns, sim = self.args.namespace, simulator.endpoint
        lines = [
            "",
            "vmclock sandbox is ready. In another shell:",
            f"  export KUBECONFIG={self.kubeconfig}",
            f"  export PATH={self.state / 'bin'}:$PATH      # kubectl matching the API server",
            "  kubectl get vmclockpolicies -A",
            "  kubectl get zstack -A -o wide",
            f"  kubectl describe vmclockpolicy -n {ns}",
            "",
            f"ZStack simulator: {sim} ({self.args.vms} VMs; list them with: curl {sim}/_sim/vms)",
            *_drift_hints(ns, sim, applied),
            "",
            f"Operator log:      {operator.log_path}",
            f"Operator metrics:  {operator.metrics_url}   liveness: {operator.liveness_url}",
            f"Simulator log:     {simulator.log_path}",
            f"Control plane:     {plane.directory}",
            READY_MARKER + " here to tear everything down.",
        ]
        return "\n".join(lines)


def _drift_hints(ns: str, sim: str, applied: list[Obj]) -> list[str]:
    """How to watch the operator correct drift, on a VM of the first Enforce example policy."""
    policies = [o for o in applied if o["kind"] == "VmClockPolicy"]
    enforced = [p for p in policies if p["spec"].get("managementPolicy", "Enforce") == "Enforce"]
    if not enforced:
        return []
    name, spec = enforced[0]["metadata"]["name"], enforced[0]["spec"]
    other = "host" if spec["track"] == "guest" else "guest"
    body = f'{{"track":"{other}"}}'
    return [
        f"  inject drift:  curl -X POST {sim}/_sim/vms/{spec['vmUuids'][0]}/track -d '{body}'",
        f"  look now:      kubectl annotate vmcp -n {ns} {name} --overwrite "
        '"vmclock.zstack.io/reconcile-requested-at=$(date +%s)"',
        f"  then:          kubectl get events -n {ns}; curl {sim}/_sim/stats",
    ]


def _watch(simulator: SimulatorProcess, operator: OperatorProcess) -> int:
    """Stay in the foreground until a signal arrives (an exception) or a child dies (exit code 1)."""
    while True:
        for name, process in (("simulator", simulator), ("operator", operator)):
            if not process.alive():
                _say(f"the {name} exited unexpectedly; its log {process.log_path} ends with:")
                _say(process.log_tail())
                return 1
        time.sleep(1.0)


@contextlib.contextmanager
def _exclusive(state: Path) -> Iterator[IO[str]]:
    """One sandbox per state directory: a second one would overwrite the first one's kubeconfig."""
    with (state / ".lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SandboxError(f"another sandbox is running with state directory {state}") from None
        yield lock


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)


def _ignore_signals() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)


def _say(text: str) -> None:
    print(text, flush=True)
