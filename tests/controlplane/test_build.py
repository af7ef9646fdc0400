"""``build`` compiles only what the cache lacks and never rewrites a binary that is already there.

The ``go`` command is a stand-in script on PATH that logs its arguments and makes tiny binaries, so these
tests need no Go and take milliseconds; the real compile is measured by running the build (README).
"""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from .binaries import NAMES, STAMP, asset_variable
from .build import build
from .gomod import ETCD_PACKAGE, K8S_PACKAGES
from .versions import Versions, cache_dir

RELEASE = Versions(k8s="v1.37.2", etcd="v3.7.3", go="go1.26.8")
OLD_SET = ("kube-apiserver", "etcd", "kubectl")

FAKE_GO = """\
#!{python}
import json, os, pathlib, sys
args = sys.argv[1:]
with open(os.environ["FAKE_GO_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
here = pathlib.Path.cwd()
if args[:2] == ["mod", "init"]:
    (here / "go.mod").write_text(f"module {{args[2]}}\\n")
elif args[:2] == ["mod", "download"]:
    gomod = here / "k8s.go.mod"
    gomod.write_text("go 1.26.0\\nreplace k8s.io/api => ./staging/src/k8s.io/api\\n")
    print(json.dumps({{"GoMod": str(gomod)}}))
elif args[0] == "get":
    (here / "go.sum").write_text("")
elif args[0] == "build":
    out = args[args.index("-o") + 1]
    for package in args[args.index("-o") + 2:]:
        binary = pathlib.Path(out) / package.rsplit("/", 1)[-1] if out.endswith("/") else pathlib.Path(out)
        binary.write_text("#!/bin/sh\\necho 'Kubernetes v1.37.2'; echo 'Client Version: v1.37.2'; "
                          "echo 'etcd Version: 3.7.3'\\n")
        binary.chmod(0o755)
"""


@pytest.fixture
def go_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake ``go`` first on PATH, an empty cache, no binaries from the environment; returns the go log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    go = bin_dir / "go"
    go.write_text(FAKE_GO.format(python=sys.executable))
    go.chmod(go.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "go.log"
    log.touch()
    monkeypatch.setenv("FAKE_GO_LOG", str(log))
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("CONTROLPLANE_CACHE", str(tmp_path / "cache"))
    for variable in ("KUBEBUILDER_ASSETS", *map(asset_variable, NAMES)):
        monkeypatch.delenv(variable, raising=False)
    return log


def _calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def _built_packages(log: Path) -> list[list[str]]:
    """The packages of each ``go build``, in order."""
    return [call[call.index("-o") + 2 :] for call in _calls(log) if call[0] == "build"]


def _stamp(directory: Path) -> dict[str, Any]:
    stamp: dict[str, Any] = json.loads((directory / STAMP).read_text())
    return stamp


def test_an_empty_cache_gets_everything_with_one_compile_for_the_kubernetes_binaries(go_log: Path) -> None:
    binaries = build(RELEASE)
    directory = cache_dir(RELEASE)
    assert binaries.assets_dir == directory
    assert _built_packages(go_log) == [list(K8S_PACKAGES.values()), [ETCD_PACKAGE]]
    (only,) = _stamp(directory)["builds"]
    assert sorted(only["binaries"]) == sorted(NAMES)

    go_log.write_text("")
    assert build(RELEASE) == binaries
    assert _calls(go_log) == [], "a complete cache is used as it is"


def test_a_cache_stamped_before_the_controller_manager_gains_it_and_keeps_the_rest(go_log: Path) -> None:
    directory = cache_dir(RELEASE)
    directory.mkdir(parents=True)
    for name in OLD_SET:
        (directory / name).write_text(f"#!/bin/sh\n# {name} as the earlier build made it\n")
        (directory / name).chmod(0o755)
    before = {name: (directory / name).stat() for name in OLD_SET}
    old_stamp = {"k8s": RELEASE.k8s, "etcd": RELEASE.etcd, "go": RELEASE.go, "seconds": 540.0, "steps": {}}
    (directory / STAMP).write_text(json.dumps(old_stamp))

    binaries = build(RELEASE)

    assert _built_packages(go_log) == [[K8S_PACKAGES["kube-controller-manager"]]]
    assert not any(ETCD_PACKAGE in " ".join(call) for call in _calls(go_log)), "etcd is not touched"
    assert binaries.kube_controller_manager == directory / "kube-controller-manager"
    for name, seen in before.items():
        now = (directory / name).stat()
        assert (now.st_ino, now.st_mtime_ns) == (seen.st_ino, seen.st_mtime_ns), f"{name} was rewritten"
        assert "as the earlier build made it" in (directory / name).read_text()
    first, added = _stamp(directory)["builds"]
    assert first == old_stamp
    assert added["binaries"] == ["kube-controller-manager"]
    assert "compile kube-controller-manager" in added["steps"]
