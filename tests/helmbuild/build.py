"""Compile ``helm`` from the ``helm.sh/helm/v3`` module into ``<controlplane cache>/helm-<v>_go-<go>/``.

Why from Go modules: the control plane is built the same way (``tests/controlplane``), so a fresh machine
needs Go and nothing else, and the version is pinned here rather than by whatever a package manager ships.
helm's go.mod has no ``replace`` lines, so ``go install module/cmd/helm@version`` builds it directly (no
wrapper module as for Kubernetes). Published like the control plane: built into a work directory under a
lock, verified by running it, moved into place, and only then stamped ``.complete``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from controlplane.binaries import STAMP
from controlplane.build import BuildError, _exclusive_lock
from controlplane.gomod import NO_DWARF
from controlplane.versions import GO_ENV, cache_root, go_binary, go_version

HELM_VERSION = "v3.21.4"
MODULE = "helm.sh/helm/v3"
PACKAGE = f"{MODULE}/cmd/helm"
# What helm's Makefile stamps, so `helm version` reports the release instead of a development build.
VERSION_PACKAGE = "helm.sh/helm/v3/internal/version"


class MissingHelmError(RuntimeError):
    """helm is not built; the message says how to build it."""


def cache_dir(version: str, go: str) -> Path:
    """Beside the control plane's binaries, keyed by every input that changes the binary."""
    return cache_root() / f"helm-{version}_go-{go}"


# helm's Makefile derives the Kubernetes version `helm template` and `helm lint` assume (when no cluster or
# --kube-version says otherwise) from its k8s.io/client-go requirement: v0.N.M means 1.N. Unstamped, helm
# assumes 1.20, and a chart's `kubeVersion: >=1.34` refuses to render.
KUBE_VERSION_PACKAGES = ("helm.sh/helm/v3/pkg/chartutil", "helm.sh/helm/v3/pkg/lint/rules")
_CLIENT_GO = re.compile(r"^\s*k8s\.io/client-go\s+v0\.(\d+)\.\d+", re.MULTILINE)


def kube_minor(gomod: str) -> str:
    """The Kubernetes minor of helm's k8s.io/client-go requirement (``v0.36.2`` -> ``36``)."""
    match = _CLIENT_GO.search(gomod)
    if match is None:
        raise BuildError("read helm go.mod", "no k8s.io/client-go v0.N.M requirement in helm's go.mod")
    return match.group(1)


def ldflags(version: str, gomod: str) -> str:
    stamps = [f"-X {VERSION_PACKAGE}.version={version}", f"-X {VERSION_PACKAGE}.gitTreeState=clean"]
    for package in KUBE_VERSION_PACKAGES:
        stamps += [f"-X {package}.k8sVersionMajor=1", f"-X {package}.k8sVersionMinor={kube_minor(gomod)}"]
    return " ".join(["-s", "-w", *stamps])


def _log(message: str) -> None:
    print(f"helm build: {message}", file=sys.stderr, flush=True)


def _run(step: str, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        args,
        cwd=cwd,
        env={**os.environ, **GO_ENV, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise BuildError(step, f"$ {' '.join(args)}\n(exit {result.returncode})\n{result.stderr[-4000:]}")
    return result.stdout


def _helm_in(directory: Path) -> Path | None:
    helm = directory / "helm"
    stamped = (directory / STAMP).is_file() and os.access(helm, os.X_OK)
    return helm if stamped else None


def build(version: str = HELM_VERSION) -> Path:
    """The path of ``helm``, compiling it only when the cache has no stamped build of this version."""
    go = go_version()
    target = cache_dir(version, go)
    with _exclusive_lock(cache_root() / f"helm-{version}_go-{go}.lock"):
        cached = _helm_in(target)
        if cached is not None:
            _log(f"cached in {target}")
            return cached
        started = time.monotonic()
        work = cache_root() / "work" / f"helm-{version}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        download = _run(
            "download helm go.mod", [go_binary(), "mod", "download", "-json", f"{MODULE}@{version}"], work
        )
        gomod = Path(json.loads(download)["GoMod"]).read_text()
        _log(f"go install {PACKAGE}@{version} ...")
        _run(
            "compile helm",
            [
                go_binary(),
                "install",
                "-trimpath",
                NO_DWARF,
                "-ldflags",
                ldflags(version, gomod),
                f"{PACKAGE}@{version}",
            ],
            work,
            {"GOBIN": str(work / "bin")},  # never the user's own GOBIN/GOPATH
        )
        seconds = round(time.monotonic() - started, 1)
        _log(f"compiled in {seconds}s")
        built = work / "bin" / "helm"
        reported = _run("verify helm", [str(built), "version", "--template", "{{.Version}}"], work).strip()
        if reported != version:
            raise BuildError("verify helm", f"{built} reports {reported!r}, expected {version!r}")
        target.mkdir(parents=True, exist_ok=True)
        (target / STAMP).unlink(missing_ok=True)
        os.replace(built, target / "helm")
        stamp = {"helm": version, "go": go, "seconds": seconds}
        (target / f"{STAMP}.tmp").write_text(json.dumps(stamp, indent=2) + "\n")
        os.replace(target / f"{STAMP}.tmp", target / STAMP)
        shutil.rmtree(work, ignore_errors=True)
        with contextlib.suppress(OSError):
            work.parent.rmdir()  # only when nothing else is building
    helm = _helm_in(target)
    if helm is None:
        raise BuildError("publish", f"helm missing from {target} after publishing")
    return helm


def require_helm(version: str = HELM_VERSION) -> Path:
    """The cached ``helm``, or a failure naming the command that builds it (tests never skip)."""
    directory = cache_dir(version, go_version())
    helm = _helm_in(directory)
    if helm is None:
        raise MissingHelmError(
            f"helm {version} is not built (looked in {directory}); run `tests/helmbuild/helm build` "
            "(or `make helm`) first"
        )
    return helm
