"""The container image: lint-clean, a build context of only what it needs, and install steps that work.

There is no Docker daemon here, so the Dockerfile's own install steps are replayed (see
``dockerfile_replay``) and the resulting venv is checked the way the image would run it.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from deploy.dockerfile_replay import DockerIgnore, ReplayedImage, parse_dockerfile
from deploy.image_lock import BUILD, RUNTIME, hashes_of, normalized, pins_of

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"
OWN_DISTRIBUTION = "vmclock-operator"
LIST_DISTRIBUTIONS = (
    "import importlib.metadata as m, json;"
    "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
)


def pinned_versions() -> dict[str, str]:
    return pins_of((REPO / "constraints.txt").read_text())


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
    needed = [
        "pyproject.toml",
        "requirements-image.txt",
        "requirements-build.txt",
        "README.md",
        "operator/vmclock/__init__.py",
        "operator/vmclock/zstack/client.py",
    ]
    kept_out = [
        "constraints.txt",  # dev pins; the image installs from the hashed files only
        "operator/vmclock/simulator/__main__.py",
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
    assert [step.split()[:3] for step in replayed_image.executed_runs] == [["python", "-m", "venv"]] * 2
    assert [step.split()[0] for step in replayed_image.skipped_runs] == ["useradd"]


def pip_installs(runs: list[str]) -> list[list[str]]:
    """Each ``pip ... install ...`` command of the replayed RUN steps, as words."""
    commands = [shlex.split(command) for run in runs for command in run.split("&&")]
    return [words for words in commands if words[0].endswith("pip") and "install" in words]


def test_every_download_in_the_replayed_install_is_hash_checked(replayed_image: ReplayedImage) -> None:
    """Whatever pip fetches must match a hash; only our own wheel, built in the image, goes by path."""
    installs = pip_installs(replayed_image.executed_runs)
    unchecked = [
        words
        for words in installs
        if "--require-hashes" not in words and not {"--no-deps", "--no-index"} <= set(words)
    ]
    assert len(installs) == 3
    assert unchecked == []
    assert sum(words[-1].endswith("vmclock_operator-*.whl") for words in installs) == 1


def test_hashed_requirements_pin_the_versions_of_constraints_txt() -> None:
    """`make lock` writes all three files; the image must install the versions the tests ran with."""
    runtime = pins_of(RUNTIME.read_text())
    assert {"kopf", "aiohttp", "kubernetes", "prometheus-client"} <= runtime.keys()
    constraints = pinned_versions()
    assert {name: version for name, version in runtime.items() if constraints.get(name) != version} == {}
    assert {"setuptools", "wheel"} <= pins_of(BUILD.read_text()).keys()
    for path in (RUNTIME, BUILD):
        hashes = hashes_of(path.read_text())
        assert hashes.keys() == pins_of(path.read_text()).keys()
        assert all(len(digest) == 64 for digests in hashes.values() for digest in digests)


def test_image_has_no_simulator_but_the_dev_venv_does(replayed_image: ReplayedImage) -> None:
    """The production image serves no fake ZStack (issue 11); `make dev` and the tests still run it."""
    importing = [sys.executable, "-c", "import vmclock.simulator"]
    in_image = subprocess.run(
        [str(replayed_image.venv / "bin" / "python"), *importing[1:]],
        env=replayed_image.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert in_image.returncode == 1
    assert "No module named 'vmclock.simulator'" in in_image.stderr
    (package,) = replayed_image.venv.glob("lib/python3.*/site-packages/vmclock")
    assert (package / "zstack").is_dir()
    assert not (package / "simulator").exists()
    (record,) = replayed_image.venv.glob("lib/python3.*/site-packages/vmclock_operator-*.dist-info/RECORD")
    assert "vmclock/simulator/" not in record.read_text()
    assert subprocess.run(importing, capture_output=True, timeout=60, check=False).returncode == 0


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
