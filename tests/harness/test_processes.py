"""The harness's promise: children never outlive their owner, and the simulator is driven over real HTTP."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from harness import SimulatorProcess, wait_for
from harness.processes import OutputPump, spawn, stop
from harness.procfs import group_members, running

TESTS = Path(__file__).resolve().parents[1]


def test_a_child_dies_when_its_owner_is_killed() -> None:
    owner_script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(TESTS)!r})
        from harness.processes import spawn
        child = spawn(["sleep", "300"])
        print(child.pid, flush=True)
        time.sleep(300)
        """
    )
    owner = subprocess.Popen([sys.executable, "-c", owner_script], stdout=subprocess.PIPE, text=True)
    assert owner.stdout is not None
    child = int(owner.stdout.readline())
    assert running(child)

    owner.kill()  # SIGKILL: no finally block, no atexit handler runs
    owner.wait()

    wait_for(lambda: running(child), lambda alive: not alive, timeout=5, interval=0.05, what="orphan to die")


def test_stop_ends_the_whole_process_group() -> None:
    proc = spawn(["sh", "-c", "sleep 300 & sleep 300 & wait"])
    members = wait_for(lambda: group_members(proc.pid), lambda m: len(m) == 3, timeout=5, what="3 members")

    stop(proc, timeout=5)

    assert {pid for pid in members if running(pid)} == set()


def test_simulator_process_serves_admin_routes_and_stops_cleanly(tmp_path: Path) -> None:
    sim = SimulatorProcess(log_path=tmp_path / "sim.log", vms=12, seed=7)
    with sim:
        pid, endpoint = sim.pid, sim.endpoint
        assert pid is not None
        vms = sim.admin.vms()
        assert len(vms) == 12
        target = next(vm for vm in vms if vm.track == "host")
        sim.admin.set_track(target.uuid, "guest")
        assert sim.admin.tracks([target.uuid]) == {target.uuid: "guest"}
        assert sim.admin.stats().writes == []  # a change behind the operator's back is not a SetVmClockTrack

    assert not running(pid)
    assert "listening on" in (tmp_path / "sim.log").read_text()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{endpoint}/_sim/vms", timeout=2)


def test_simulator_start_failure_names_the_log(tmp_path: Path) -> None:
    sim = SimulatorProcess(log_path=tmp_path / "sim.log", vms=-1)

    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"sim\.log"):
        sim.start()

    assert time.monotonic() - started < 20
    assert not sim.alive()


def test_output_pump_sees_lines_that_arrive_in_one_chunk() -> None:
    proc = spawn(["sh", "-c", "printf 'one\\ntwo\\nthree\\n'; sleep 300"], stdout_pipe=True)
    try:
        assert proc.stdout is not None
        pump = OutputPump(proc.stdout)

        assert pump.expect(lambda line: line == "three", timeout=5) == "three"
        assert pump.lines == ["one", "two", "three"]
        assert pump.expect(lambda line: True, timeout=0.3) is None
    finally:
        stop(proc, timeout=5)
