"""Process-group teardown, parent-death signals and orphan detection, with real processes (no Go binaries)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .processes import pids_mentioning, spawn, start_time, terminate_group, wait_until_gone
from .rundir import RunDir

TESTS = Path(__file__).resolve().parent.parent
GONE_SECONDS = 3.0


@pytest.fixture
def daemon(tmp_path: Path) -> Path:
    """``sleep`` under a path inside tmp_path, so its command line identifies it like a run directory does."""
    link = tmp_path / "daemon"
    link.symlink_to("/bin/sleep")
    return link


def _spawn_from_helper(daemon: Path, *, owned: bool) -> tuple[subprocess.Popen[str], int]:
    """A helper process spawns the daemon and stays alive, standing in for pytest or `controlplane run`."""
    code = (
        "import os, sys, time\nfrom pathlib import Path\nfrom controlplane.processes import spawn\n"
        "daemon = os.environ['DAEMON']\n"  # not in argv: only the daemon's command line may name it
        f"child = spawn([daemon, '300'], Path(daemon + '.log'), owned={owned})\n"
        "print(child.pid, flush=True)\ntime.sleep(300)\n"
    )
    env = {**os.environ, "DAEMON": str(daemon), "PYTHONPATH": str(TESTS)}
    helper = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert helper.stdout is not None
    return helper, int(helper.stdout.readline())


def test_owned_daemon_dies_when_its_owner_is_sigkilled(daemon: Path) -> None:
    helper, child = _spawn_from_helper(daemon, owned=True)
    assert pids_mentioning(str(daemon)) == [child]
    helper.kill()
    helper.wait()
    assert wait_until_gone(str(daemon), GONE_SECONDS) == []


def test_detached_daemon_outlives_its_starter_until_its_group_is_terminated(daemon: Path) -> None:
    helper, child = _spawn_from_helper(daemon, owned=False)
    helper.kill()
    helper.wait()
    try:
        time.sleep(0.3)
        assert pids_mentioning(str(daemon)) == [child]
        assert os.getpgid(child) == child  # leads its own group, away from the terminal's signals
    finally:
        terminate_group(child, timeout=GONE_SECONDS)
    assert wait_until_gone(str(daemon), GONE_SECONDS) == []


def test_terminate_group_kills_children_that_ignore_sigterm(daemon: Path) -> None:
    script = f"trap '' TERM; {daemon} 300 & {daemon} 301 & wait"
    leader = spawn(["sh", "-c", script], daemon.with_suffix(".log"), owned=True)
    deadline = time.monotonic() + GONE_SECONDS
    while len(pids_mentioning(f"{daemon} 30")) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(pids_mentioning(f"{daemon} 30")) == 3  # the shell and both sleeps
    started = time.monotonic()
    terminate_group(leader.pid, timeout=0.5, child=leader)
    assert pids_mentioning(str(daemon)) == []
    assert leader.returncode == -signal.SIGKILL
    assert time.monotonic() - started < GONE_SECONDS


def _rundir_owned_by(path: Path, owner: str | None) -> RunDir:
    path.mkdir()
    if owner is not None:
        (path / "owner").write_text(owner + "\n")
    return RunDir(path)


def test_orphan_detection_follows_the_owner_process(tmp_path: Path) -> None:
    me = f"{os.getpid()} {start_time(os.getpid())}"
    assert not _rundir_owned_by(tmp_path / "live", me).orphaned()
    assert not _rundir_owned_by(tmp_path / "detached", "detached").orphaned()
    assert not _rundir_owned_by(tmp_path / "being-created", None).orphaned()
    assert _rundir_owned_by(tmp_path / "recycled-pid", f"{os.getpid()} 1").orphaned()
    dead = subprocess.Popen(["true"])
    dead.wait()
    assert _rundir_owned_by(tmp_path / "dead", f"{dead.pid} 1").orphaned()


def test_reap_never_signals_a_pid_that_no_longer_belongs_to_the_run(tmp_path: Path, daemon: Path) -> None:
    stranger = subprocess.Popen(["sleep", "300"])
    try:
        rundir = _rundir_owned_by(tmp_path / "run", "detached")
        rundir.pids.mkdir()
        rundir.write_pid("kube-apiserver", stranger.pid)
        rundir.reap(timeout=GONE_SECONDS)
        assert stranger.poll() is None
        assert not rundir.path.exists()
    finally:
        stranger.kill()
        stranger.wait()
