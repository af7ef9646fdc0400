"""The per-run directory of one control plane: PKI, etcd data, logs, pid files, kubeconfigs.

All run directories live under one base (on /dev/shm when possible: etcd then never waits for a disk) and
record who owns them, so a later run can find and reap the leftovers of a run whose owner was killed:
owned daemons die with their owner, but their directory (etcd's data in RAM) would otherwise stay behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .processes import cmdline, start_time, terminate_group

BASE_NAME = "vmclock-controlplane"
BASE_VARIABLE = "CONTROLPLANE_RUNTIME_DIR"
DETACHED = "detached"
# Clients first: the controller manager never works against a stopping apiserver, nor the apiserver
# against stopped storage.
STOP_ORDER = ("kube-controller-manager", "kube-apiserver", "etcd")
UNCLAIMED_GRACE_SECONDS = 60.0


def runtime_base() -> Path:
    """``$CONTROLPLANE_RUNTIME_DIR`` if set: a base of one's own, whose orphans no other run reaps first."""
    explicit = os.environ.get(BASE_VARIABLE)
    if explicit:
        return Path(explicit)
    shm = Path("/dev/shm")
    root = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    return root / BASE_NAME


@dataclass(frozen=True)
class RunDir:
    path: Path

    @classmethod
    def create(cls, *, detached: bool) -> RunDir:
        base = runtime_base()
        base.mkdir(parents=True, exist_ok=True)
        rundir = cls(Path(tempfile.mkdtemp(prefix="cp-", dir=base)))
        owner = DETACHED if detached else f"{os.getpid()} {start_time(os.getpid())}"
        (rundir.path / "owner").write_text(owner + "\n")
        for sub in (rundir.logs, rundir.pids, rundir.bin):
            sub.mkdir()
        return rundir

    @property
    def pki(self) -> Path:
        return self.path / "pki"

    @property
    def etcd_data(self) -> Path:
        return self.path / "etcd"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def pids(self) -> Path:
        return self.path / "pids"

    @property
    def bin(self) -> Path:
        """Holds a ``kubectl`` symlink, so PATH can expose kubectl without exposing etcd & co."""
        return self.path / "bin"

    @property
    def kubeconfig(self) -> Path:
        """The admin's, for clients."""
        return self.path / "kubeconfig"

    @property
    def controller_manager_kubeconfig(self) -> Path:
        return self.path / "kube-controller-manager.kubeconfig"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def write_pid(self, name: str, pid: int) -> None:
        (self.pids / f"{name}.pid").write_text(f"{pid}\n")

    def read_pids(self) -> dict[str, int]:
        pids = {}
        for name in STOP_ORDER:
            with contextlib.suppress(FileNotFoundError, ValueError):
                pids[name] = int((self.pids / f"{name}.pid").read_text())
        return pids

    @property
    def detached(self) -> bool:
        return self._owner() == DETACHED

    def orphaned(self) -> bool:
        """True when the owning process is gone (or never recorded itself and the dir is stale)."""
        owner = self._owner()
        if owner is None:
            return time.time() - self.path.stat().st_mtime > UNCLAIMED_GRACE_SECONDS
        if owner == DETACHED:
            return False
        pid, started = owner.split()
        return start_time(int(pid)) != started

    def _owner(self) -> str | None:
        try:
            return (self.path / "owner").read_text().strip()
        except FileNotFoundError:
            return None

    def reap(self, timeout: float) -> None:
        """Stop this run's daemons by process group, then delete the directory.

        A pid is signalled only while its command line still names this directory, so a recycled pid
        belonging to an unrelated process is never touched.
        """
        for pid in self.read_pids().values():
            if str(self.path) in cmdline(pid):
                terminate_group(pid, timeout)
        shutil.rmtree(self.path, ignore_errors=True)


def all_rundirs() -> list[RunDir]:
    base = runtime_base()
    if not base.is_dir():
        return []
    return [RunDir(entry) for entry in sorted(base.iterdir()) if entry.is_dir()]


def reap_orphans(timeout: float) -> list[Path]:
    """Reap every run whose owner died; returns the directories removed."""
    reaped = []
    for rundir in all_rundirs():
        if rundir.orphaned():
            rundir.reap(timeout)
            reaped.append(rundir.path)
    return reaped
