"""The container image: lint-clean, a build context of only what it needs, and install steps that work.

There is no Docker daemon here, so the Dockerfile's own install steps are replayed (see
``dockerfile_replay``) and the resulting venv is checked the way the image would run it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from deploy.dockerfile_replay import DockerIgnore, ReplayedImage, parse_dockerfile

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"
OWN_DISTRIBUTION = "vmclock-operator"
LIST_DISTRIBUTIONS = (
    "import importlib.metadata as m, json;"
    "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
)


def normalized(name: str) -> str:
    """PEP 503 project-name normalization (constraints.txt mixes ``PyYAML``, ``typing_extensions``...)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_versions() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if requirement:
            name, _, version = requirement.partition("==")
            pins[normalized(name)] = version
    return pins


def files_under(directory: Path) -> set[Path]:
    return {path for path in directory.rglob("*") if path.is_file()}


def test_hadolint_reports_nothing() -> None:
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_both_stages_use_the_pinned_slim_python_image() -> None:
    assert [stage.image for stage in parse_dockerfile(DOCKERFILE.read_text())] == ["python:3.11-slim"] * 2


def test_build_context_holds_only_what_the_image_needs() -> None:
    ignore = DockerIgnore((REPO / ".dockerignore").read_text())
    needed = ["pyproject.toml", "constraints.txt", "README.md", "operator/vmclock/__init__.py"]
    kept_out = [
        ".git/config",
        ".venv/bin/python",
        "tests/conftest.py",
        "deploy/base/deployment.yaml",
        "operator/vmclock/__pycache__/__init__.cpython-311.pyc",
        "operator/vmclock_operator.egg-info/PKG-INFO",
    ]
    assert [path for path in needed if ignore.excluded(path)] == []
    assert [path for path in kept_out if not ignore.excluded(path)] == []


def test_replay_ran_the_install_steps_and_skipped_only_user_setup(replayed_image: ReplayedImage) -> None:
    assert [step.split()[:2] for step in replayed_image.executed_runs] == [["pip", "wheel"], ["python", "-m"]]
    assert [step.split()[0] for step in replayed_image.skipped_runs] == ["useradd"]


def test_entrypoint_starts_from_the_venv_without_writing_files(replayed_image: ReplayedImage) -> None:
    before = files_under(replayed_image.root)
    result = subprocess.run(
        [*replayed_image.entrypoint, "--help"],
        env=replayed_image.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: vmclock run")
    assert replayed_image.entrypoint[0] == str(replayed_image.venv / "bin" / "vmclock")
    assert files_under(replayed_image.root) == before


def test_venv_holds_exactly_the_pinned_versions_and_no_pip(replayed_image: ReplayedImage) -> None:
    listing = subprocess.run(
        [str(replayed_image.venv / "bin" / "python"), "-c", LIST_DISTRIBUTIONS],
        env=replayed_image.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    installed = {normalized(name): version for name, version in json.loads(listing.stdout).items()}
    pins = pinned_versions()
    assert installed.pop(OWN_DISTRIBUTION) == "0.1.0"
    assert {name: version for name, version in installed.items() if pins.get(name) != version} == {}
    assert {"kopf", "aiohttp", "kubernetes", "prometheus-client"} <= installed.keys()
    assert "pip" not in installed


def test_operator_bytecode_is_compiled_at_install_time(replayed_image: ReplayedImage) -> None:
    """With a read-only root filesystem nothing can be compiled later, so every module ships its .pyc."""
    (package,) = replayed_image.venv.glob("lib/python3.*/site-packages/vmclock")
    sources = {path.stem for path in package.glob("*.py")}
    compiled = {path.name.split(".")[0] for path in package.glob("__pycache__/*.pyc")}
    assert sources
    assert sources <= compiled
