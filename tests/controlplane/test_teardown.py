"""No daemon outlives its owner, and ``start``/``stop`` leave nothing behind (real binaries, real signals)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
from pathlib import Path

import pytest

from .processes import pids_mentioning, wait_until_gone
from .rundir import BASE_VARIABLE, STOP_ORDER, RunDir, reap_orphans

pytestmark = pytest.mark.integration

CONTROLPLANE = Path(__file__).with_name("controlplane")
START_SECONDS = 120.0
GONE_SECONDS = 5.0


def _first_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    line = process.stdout.readline() if ready else ""
    if not line:
        process.kill()
        _, stderr = process.communicate()
        pytest.fail(f"controlplane printed nothing within {timeout}s:\n{stderr}")
    return line.strip()


def test_daemons_die_with_a_sigkilled_owner_and_the_leftover_dir_is_reaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A base of its own: any control plane starting meanwhile (another xdist worker, the concurrent compat
    # run) reaps every orphan under the shared base and could take this one before the assertion does.
    monkeypatch.setenv(BASE_VARIABLE, str(tmp_path / "runs"))
    script = 'echo "$CONTROLPLANE_DIR"; exec sleep 600'
    owner = subprocess.Popen(
        [str(CONTROLPLANE), "run", "--", "sh", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    directory = ""
    try:
        directory = _first_line(owner, START_SECONDS)
        assert len(pids_mentioning(directory)) == len(STOP_ORDER), f"{STOP_ORDER} should be running"
        os.kill(owner.pid, signal.SIGKILL)
        assert wait_until_gone(directory, GONE_SECONDS) == []
        assert RunDir(Path(directory)).orphaned()
        assert Path(directory) in reap_orphans(timeout=GONE_SECONDS)
        assert not Path(directory).exists()
    finally:
        os.killpg(owner.pid, signal.SIGKILL)  # the `sleep` that outlived its runner
        owner.communicate()


def test_stop_ends_a_detached_control_plane() -> None:
    started = subprocess.run([str(CONTROLPLANE), "start"], capture_output=True, text=True, check=False)
    assert started.returncode == 0, started.stderr
    env = dict(line.split("=", 1) for line in started.stdout.splitlines())
    directory = env["CONTROLPLANE_DIR"]
    try:
        daemons = (
            "CONTROLPLANE_ETCD_PID",
            "CONTROLPLANE_KUBE_APISERVER_PID",
            "CONTROLPLANE_KUBE_CONTROLLER_MANAGER_PID",
        )
        assert sorted(pids_mentioning(directory)) == sorted(int(env[key]) for key in daemons)
    finally:
        stopped = subprocess.run(
            [str(CONTROLPLANE), "stop", "--dir", directory], capture_output=True, text=True, check=False
        )
    assert stopped.returncode == 0, stopped.stderr
    assert pids_mentioning(directory) == []
    assert not Path(directory).exists()
