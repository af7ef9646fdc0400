"""Run directories under a base of one's own (``$CONTROLPLANE_RUNTIME_DIR``), which other runs never reap."""

from __future__ import annotations

from pathlib import Path

import pytest

from .rundir import BASE_VARIABLE, RunDir, reap_orphans


def _orphan() -> RunDir:
    """A run directory whose owner is gone: the pid it recorded now has another start time (recycled)."""
    rundir = RunDir.create(detached=False)
    pid, _ = (rundir.path / "owner").read_text().split()
    (rundir.path / "owner").write_text(f"{pid} not-its-start-time\n")
    return rundir


def test_an_orphan_under_a_private_base_is_reaped_only_by_runs_on_that_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine, other = tmp_path / "mine", tmp_path / "other"
    monkeypatch.setenv(BASE_VARIABLE, str(mine))
    orphan = _orphan()
    assert orphan.path.parent == mine
    assert orphan.orphaned()

    monkeypatch.setenv(BASE_VARIABLE, str(other))
    assert reap_orphans(timeout=1.0) == []
    assert orphan.path.is_dir()

    monkeypatch.setenv(BASE_VARIABLE, str(mine))
    assert reap_orphans(timeout=1.0) == [orphan.path]
    assert not orphan.path.exists()
