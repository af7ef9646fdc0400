"""Without binaries the integration tests fail loudly with the build command; they never skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .binaries import NAMES, asset_variable

REPO = Path(__file__).resolve().parents[2]
A_CONTROLPLANE_TEST = "tests/integration/test_controlplane.py::test_anonymous_requests_are_forbidden"


def test_controlplane_fixture_fails_with_the_build_command_when_nothing_is_built(tmp_path: Path) -> None:
    hidden = {"KUBEBUILDER_ASSETS", *map(asset_variable, NAMES)}
    env = {key: value for key, value in os.environ.items() if key not in hidden}
    env["CONTROLPLANE_CACHE"] = str(tmp_path / "empty-cache")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", A_CONTROLPLANE_TEST],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result.stdout
    assert "1 error" in result.stdout
    assert "skipped" not in result.stdout
    assert "Run `tests/controlplane/controlplane build` (or `make controlplane`) first." in result.stdout
