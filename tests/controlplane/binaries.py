"""Finding kube-apiserver, etcd, kubectl and kube-controller-manager the way envtest finds binaries.

Precedence per binary: ``TEST_ASSET_<NAME>`` (one file), then ``$KUBEBUILDER_ASSETS/<name>``, then the
build cache (only when its ``.complete`` stamp exists, so a half-published build is never used).  envtest
itself knows only the first three; kube-controller-manager follows the same rule
(``TEST_ASSET_KUBE_CONTROLLER_MANAGER``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .versions import DEFAULT_K8S_VERSION, Versions, cache_dir, versions_from_env

NAMES = ("kube-apiserver", "etcd", "kubectl", "kube-controller-manager")
STAMP = ".complete"


class MissingBinariesError(RuntimeError):
    """The binaries are not built; the message says how to build them."""


@dataclass(frozen=True)
class Binaries:
    kube_apiserver: Path
    etcd: Path
    kubectl: Path
    kube_controller_manager: Path

    @property
    def assets_dir(self) -> Path | None:
        """The single directory holding all of them (a valid ``KUBEBUILDER_ASSETS``), if there is one."""
        parents = {path.parent for path in self.paths()}
        return parents.pop() if len(parents) == 1 else None

    def env(self) -> dict[str, str]:
        """Variables that make envtest-style tools (and this package) find the same binaries."""
        assets = self.assets_dir
        if assets is not None:
            return {"KUBEBUILDER_ASSETS": str(assets)}
        return {asset_variable(name): str(path) for name, path in zip(NAMES, self.paths(), strict=True)}

    def paths(self) -> tuple[Path, Path, Path, Path]:
        """In the order of :data:`NAMES`."""
        return self.kube_apiserver, self.etcd, self.kubectl, self.kube_controller_manager


def asset_variable(name: str) -> str:
    """``kube-apiserver`` -> ``TEST_ASSET_KUBE_APISERVER`` (envtest's naming rule)."""
    return "TEST_ASSET_" + "".join(c if c.isalnum() else "_" for c in name.upper())


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _find_one(name: str, env: Mapping[str, str], cached: Path | None) -> Path | None:
    candidates: list[Path] = []
    if env.get(asset_variable(name)):
        candidates.append(Path(env[asset_variable(name)]))
    if env.get("KUBEBUILDER_ASSETS"):
        candidates.append(Path(env["KUBEBUILDER_ASSETS"]) / name)
    if cached is not None:
        candidates.append(cached / name)
    return next((path.absolute() for path in candidates if _executable(path)), None)


def cache_missing(versions: Versions) -> list[str]:
    """What the build cache lacks: everything until a build stamped it, then any binary added since
    (a cache built before kube-controller-manager joined :data:`NAMES` lacks only that one)."""
    directory = cache_dir(versions)
    if not (directory / STAMP).is_file():
        return list(NAMES)
    return [name for name in NAMES if not _executable(directory / name)]


def _lookup(versions: Versions | None, env: Mapping[str, str], use_cache: bool) -> dict[str, Path | None]:
    cached: Path | None = None
    if use_cache:
        directory = cache_dir(versions or versions_from_env())
        cached = directory if (directory / STAMP).is_file() else None
    return {name: _find_one(name, env, cached) for name in NAMES}


def resolve_binaries(
    versions: Versions | None = None, env: Mapping[str, str] | None = None, *, use_cache: bool = True
) -> Binaries | None:
    """All the binaries, or ``None`` if any of them is missing.  Never builds.

    ``use_cache=False`` looks only at the explicit variables, so ``build`` can tell "provided by the user"
    apart from "already built by us".
    """
    lookup = _lookup(versions, os.environ if env is None else env, use_cache)
    found = [path for path in lookup.values() if path is not None]
    return Binaries(*found) if len(found) == len(NAMES) else None


def require_binaries(versions: Versions | None = None) -> Binaries:
    """Like :func:`resolve_binaries` but fails with the command that fixes it (tests must never skip)."""
    versions = versions or versions_from_env()
    found = _lookup(versions, os.environ, use_cache=True)
    missing = [name for name, path in found.items() if path is None]
    if missing:
        command = (
            "`tests/controlplane/controlplane build` (or `make controlplane`)"
            if versions.k8s == DEFAULT_K8S_VERSION
            else f"`tests/controlplane/controlplane build --kubernetes {versions.k8s}`"
        )
        raise MissingBinariesError(
            f"{', '.join(missing)} for {versions.cache_key} not built "
            f"(looked at TEST_ASSET_*, KUBEBUILDER_ASSETS and {cache_dir(versions)}). "
            f"Run {command} first."
        )
    return Binaries(*(path for path in found.values() if path is not None))
