"""Prometheus and promtool for the monitoring tests: Debian's package, pinned by version and sha256.

Why Debian's package and not a Go-module build like the control plane: Prometheus 2.42 built from source
needs its web UI's npm build on top of a Go build several times the size of kube-apiserver's (well over 10
minutes on 2 cores), while `apt-get download` of the 19 MB .deb and `dpkg-deb -x` take seconds and touch
nothing outside the cache. Both binaries are Go programs linked only against libc, so they run anywhere the
tests run. The .deb's sha256 is checked before anything is unpacked. Debian's archive keeps only the newest
bookworm revision: when a point release replaces this one, `apt-get download` fails and VERSION and SHA256
must move to the new revision (`apt-cache policy prometheus` names it).

Installed into ``$XDG_CACHE_HOME/vmclock-prometheus/<version>/`` (``~/.cache`` by default), beside the
control plane's cache and outside the repo, published atomically under a lock: a ``.complete`` stamp is
written last, so a half-unpacked install is never used. Standard library only (runs before the venv).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "prometheus"
VERSION = "2.42.0+ds-5+deb12u1"
SHA256 = "81d59a24fce84f7fbe97a45a4f2914b6a5881b5cd1db2a6a0e129e515e1a5f55"
STAMP = ".complete"
INSTALL_COMMAND = "make prometheus"


class MissingPrometheusError(RuntimeError):
    """The binaries are not installed; the message names the command that installs them."""


@dataclass(frozen=True)
class PrometheusBinaries:
    prometheus: Path
    promtool: Path


def cache_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "vmclock-prometheus" / VERSION


def _binaries(root: Path) -> PrometheusBinaries:
    return PrometheusBinaries(root / "usr/bin/prometheus", root / "usr/bin/promtool")


def require() -> PrometheusBinaries:
    """The installed binaries, or an error that says how to install them."""
    root = cache_dir()
    if not (root / STAMP).is_file():
        raise MissingPrometheusError(
            f"prometheus {VERSION} is not installed in {root}; run `{INSTALL_COMMAND}`"
        )
    return _binaries(root)


def install() -> PrometheusBinaries:
    """Download, verify and unpack the pinned package; a no-op when it is installed already."""
    root = cache_dir()
    root.parent.mkdir(parents=True, exist_ok=True)
    with (root.parent / f"{VERSION}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / STAMP).is_file():
            return _binaries(root)
        with tempfile.TemporaryDirectory(dir=root.parent) as work:
            deb = _download(Path(work))
            unpacked = Path(work) / "root"
            subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
            shutil.rmtree(root, ignore_errors=True)
            os.replace(unpacked, root)
        (root / STAMP).write_text(f"{PACKAGE} {VERSION} sha256 {SHA256}\n")
    return _binaries(root)


def _download(work: Path) -> Path:
    subprocess.run(["apt-get", "download", f"{PACKAGE}={VERSION}"], cwd=work, check=True)
    deb = next(work.glob(f"{PACKAGE}_*.deb"))
    digest = hashlib.sha256(deb.read_bytes()).hexdigest()
    if digest != SHA256:
        raise RuntimeError(f"{deb.name}: sha256 {digest}, expected {SHA256}; refusing to unpack it")
    return deb


def main() -> int:
    binaries = install()
    version = subprocess.run(
        [str(binaries.promtool), "--version"], capture_output=True, text=True, check=True
    )
    print(f"promtools: {version.stdout.splitlines()[0]} in {binaries.promtool.parent}", file=sys.stderr)
    return 0
