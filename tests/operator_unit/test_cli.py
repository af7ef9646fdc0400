"""The console command's argument handling (no cluster needed)."""

from __future__ import annotations

import subprocess
import sys

from vmclock.cli import _parser, peering_priority


def test_help_works_without_a_cluster() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "vmclock", "run", "--help"], capture_output=True, text=True, check=True
    )
    assert "--all-namespaces" in done.stdout
    assert "--metrics-port" in done.stdout


def test_standalone_has_no_priority() -> None:
    assert peering_priority(_parser().parse_args(["run"])) is None


def test_explicit_priority_is_kept() -> None:
    assert peering_priority(_parser().parse_args(["run", "--peering", "vmclock", "--priority", "7"])) == 7


def test_peering_replicas_draw_distinct_priorities() -> None:
    args = _parser().parse_args(["run", "--peering", "vmclock"])
    drawn = {peering_priority(args) for _ in range(20)}
    assert None not in drawn
    assert len(drawn) > 1


def test_namespace_and_all_namespaces_exclude_each_other() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "vmclock", "run", "-A", "-n", "x"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert "not allowed with argument" in done.stderr
