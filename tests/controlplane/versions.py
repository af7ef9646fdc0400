"""Which Kubernetes/etcd/Go versions we build, and where their binaries are cached.

The cache key holds every input that changes the binaries, so two versions never overwrite each other and
a Go upgrade triggers a rebuild instead of silently reusing binaries built by another toolchain.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

DEFAULT_K8S_VERSION = "v1.37.2"
# etcd per Kubernetes minor, as envtest and kops pair them: 3.7 from 1.37 on, the newest served 3.6 before.
ETCD_FROM_37 = "v3.7.3"
ETCD_BEFORE_37 = "v3.6.16"
FIRST_MINOR_ON_ETCD_37 = 37
GO_ENV = {"GOTOOLCHAIN": "local", "CGO_ENABLED": "0", "GOWORK": "off"}

_SEMVER = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")


class VersionError(RuntimeError):
    """A version or toolchain problem that makes building or finding binaries impossible."""


@dataclass(frozen=True)
class Versions:
    """The three versions that identify one set of binaries."""

    k8s: str
    etcd: str
    go: str

    def __post_init__(self) -> None:
        for name, value in (("K8S_VERSION", self.k8s), ("ETCD_VERSION", self.etcd)):
            if not _SEMVER.match(value):
                raise VersionError(f"{name}={value!r} is not a release version like v1.2.3")

    @property
    def k8s_parts(self) -> tuple[str, str, str]:
        """Major, minor and patch of the Kubernetes release, as the strings ``/version`` reports."""
        match = _SEMVER.match(self.k8s)
        assert match is not None  # checked in __post_init__
        major, minor, patch = match.groups()
        return major, minor, patch

    @property
    def staging(self) -> str:
        """The tag of every staging module (``k8s.io/api`` & co.) that belongs to ``k8s.io/kubernetes``.

        Kubernetes tags ``v1.N.M`` as ``v0.N.M`` in each staging repository.
        """
        _, minor, patch = self.k8s_parts
        return f"v0.{minor}.{patch}"

    @property
    def cache_key(self) -> str:
        return f"k8s-{self.k8s}_etcd-{self.etcd}_go-{self.go}"


def go_binary() -> str:
    """The ``go`` command, or a clear error naming what is missing."""
    go = shutil.which("go")
    if go is None:
        raise VersionError("the 'go' command is not on PATH; Go is needed to build the control plane")
    return go


def go_version() -> str:
    """The local toolchain's version (``go1.26.8``), never a downloaded one (GOTOOLCHAIN=local)."""
    result = subprocess.run(
        [go_binary(), "env", "GOVERSION"],
        env={**os.environ, **GO_ENV},
        capture_output=True,
        text=True,
        check=False,
    )
    version = result.stdout.strip()
    if result.returncode != 0 or not version.startswith("go"):
        raise VersionError(f"'go env GOVERSION' failed: {result.stderr.strip() or version}")
    return version


def release(text: str) -> str:
    """``1.34.4`` or ``v1.34.4`` -> ``v1.34.4``: the command line accepts the form people type."""
    version = text.strip()
    return version if version.startswith("v") else f"v{version}"


def paired_etcd(k8s: str) -> str:
    """The etcd a Kubernetes release is built and tested with unless ``ETCD_VERSION`` says otherwise."""
    match = _SEMVER.match(k8s)
    if match is None:
        raise VersionError(f"K8S_VERSION={k8s!r} is not a release version like v1.2.3")
    return ETCD_FROM_37 if int(match.group(2)) >= FIRST_MINOR_ON_ETCD_37 else ETCD_BEFORE_37


def requested_releases() -> tuple[str, str]:
    """Kubernetes and etcd chosen by ``K8S_VERSION`` / ``ETCD_VERSION``, else the default and its etcd.

    Needs no Go, so a pytest header or an error message can name the versions on a machine without it.
    """
    k8s = os.environ.get("K8S_VERSION") or DEFAULT_K8S_VERSION
    return k8s, os.environ.get("ETCD_VERSION") or paired_etcd(k8s)


def versions_from_env() -> Versions:
    """:func:`requested_releases` plus the local Go, which is part of the cache key."""
    k8s, etcd = requested_releases()
    return Versions(k8s=k8s, etcd=etcd, go=go_version())


def cache_root() -> Path:
    """Outside the repo so checkouts, sessions and CI runs on one machine share the binaries."""
    explicit = os.environ.get("CONTROLPLANE_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "vmclock-controlplane"


def cache_dir(versions: Versions) -> Path:
    return cache_root() / versions.cache_key
