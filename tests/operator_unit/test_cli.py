"""The console command's argument handling (no cluster needed)."""

from __future__ import annotations

import subprocess
import sys

from vmclock.cli import _parser, peering_priority
from vmclock.zstack import budget


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


def budget_of(*flags: str) -> int:
    return _parser().parse_args(["run", *flags]).reply_memory_budget  # type: ignore[no-any-return]


def test_reply_memory_budget_defaults_to_the_process_default_and_takes_sizes() -> None:
    assert budget_of() == budget.DEFAULT_LIMIT
    assert budget_of("--reply-memory-budget", "1Gi") == 1024**3
    assert budget_of("--reply-memory-budget", "127Mi") == 127 * 1024**2
    assert budget_of("--reply-memory-budget", "200000000") == 200_000_000


def test_reply_memory_budget_too_small_for_one_reply_or_not_a_size_is_refused() -> None:
    refused = {"126Mi": "use at least 127Mi", "160MB": "bytes, or a number with Ki, Mi or Gi"}
    for value, message in refused.items():
        done = subprocess.run(
            [sys.executable, "-m", "vmclock", "run", "--reply-memory-budget", value],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 2
        assert "--reply-memory-budget" in done.stderr
        assert message in done.stderr
