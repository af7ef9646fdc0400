"""``make dev`` end to end: it comes up with Ready example policies, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane import Kubectl, require_binaries
from harness import POLICY, condition_is
from harness.processes import OutputPump
from harness.procfs import cmdline, descendants, running
from sandbox.run import READY_MARKER

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 300.0
NAMESPACE = "sandbox-test"


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], OutputPump, Path]]:
    """The sandbox as ``make dev`` runs it (plus test-friendly flags), once it printed its banner."""
    require_binaries()
    state = tmp_path / "state"
    argv = [sys.executable, "-m", "tests.sandbox", "--state-dir", str(state), "--sim-port", "0"]
    argv += ["--vms", "60", "--namespace", NAMESPACE]
    # Started as a shell without job control starts a background job, SIGINT ignored (`exec` keeps that):
    # the sandbox must not inherit it as "Ctrl-C does nothing".
    ignoring_sigint = ["sh", "-c", 'trap "" INT; exec "$@"', "sh"]
    proc = subprocess.Popen(
        ignoring_sigint + argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert proc.stdout is not None
    output = OutputPump(proc.stdout)
    try:
        ready = output.expect(lambda line: line.startswith(READY_MARKER), START_TIMEOUT)
        shown = "\n".join(output.lines)
        assert ready is not None, f"no banner from the sandbox (exit code {proc.poll()}):\n{shown}"
        yield proc, output, state
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_sandbox_serves_ready_examples_and_a_stop_signal_leaves_nothing_running(
    sandbox: tuple[subprocess.Popen[bytes], OutputPump, Path], stop_signal: signal.Signals
) -> None:
    proc, output, state = sandbox
    banner = list(output.lines)
    kubeconfig = state / "kubeconfig"
    assert f"  export KUBECONFIG={kubeconfig}" in banner
    assert any("kubectl get vmclockpolicies -A" in line for line in banner)
    assert any("curl -X POST" in line and "/_sim/vms/" in line for line in banner)

    children = {pid: cmdline(pid) for pid in descendants(proc.pid)}
    commands = " | ".join(children.values())
    for expected in ("etcd", "kube-apiserver", "kube-controller-manager", "vmclock.simulator", "vmclock run"):
        assert expected in commands, f"{expected!r} not among the sandbox's children: {commands}"

    kubectl = Kubectl(state / "bin" / "kubectl", kubeconfig)
    policies = kubectl.json("get", POLICY, namespace=NAMESPACE)["items"]
    assert len(policies) >= 2
    assert all(condition_is(p, "Ready", "True") for p in policies), [p.get("status") for p in policies]
    (conn,) = kubectl.json("get", "zstackconnections", namespace=NAMESPACE)["items"]
    endpoint = conn["spec"]["endpoint"]
    with urllib.request.urlopen(f"{endpoint}/_sim/vms", timeout=10) as response:
        fleet = {vm["uuid"]: vm for vm in json.load(response)}
    for item in policies:
        for uuid in item["spec"]["vmUuids"]:
            assert fleet[uuid]["track"] == item["spec"]["track"]

    os.kill(proc.pid, stop_signal)  # Ctrl-C sends SIGINT to the foreground process; service managers SIGTERM

    assert proc.wait(timeout=90) == 0
    output.join(timeout=10)
    assert output.lines[-1] == "stopped; nothing is left running.", output.lines[len(banner) :]
    survivors = {pid: cmd for pid, cmd in children.items() if running(pid) and cmdline(pid) == cmd}
    assert survivors == {}
    assert not kubeconfig.exists()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{endpoint}/_sim/vms", timeout=5)
