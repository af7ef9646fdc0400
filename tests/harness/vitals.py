"""The operator's vital signs while a test runs: liveness and resident memory (sampled on a thread), CPU.

A probe that answers once at the end says nothing about the minutes before; the kubelet polls liveness and
the kernel enforces the memory limit all the time, so the test samples both all the time too. Memory comes
from ``/proc/<pid>/status``: ``VmRSS`` now and, at the end, ``VmHWM`` (the process's peak since it started,
which also catches a spike between two samples).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from .procfs import stat_fields

MIB = 1024 * 1024
_QUANTITY = re.compile(r"^(\d+)(Ki|Mi|Gi)$")
_UNITS = {"Ki": 1024, "Mi": MIB, "Gi": 1024 * MIB}


def status_bytes(pid: int, key: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024
    raise LookupError(f"{key} not in /proc/{pid}/status")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far (``utime + stime`` of ``/proc/<pid>/stat``)."""
    fields = stat_fields(pid)
    if fields is None:
        raise LookupError(f"no process {pid}")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def quantity_bytes(text: str) -> int:
    """A Kubernetes memory quantity with a binary suffix (``384Mi``), in bytes."""
    match = _QUANTITY.match(text.strip())
    if match is None:
        raise ValueError(f"not a Ki/Mi/Gi memory quantity: {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class Probe:
    at: float  # monotonic time the probe was sent
    status: int | None  # HTTP status, None when nothing answered
    seconds: float  # how long the answer took: a stalled event loop shows here before it fails a probe


@dataclass
class Vitals:
    """Samples ``liveness()`` and the RSS of ``pid`` every ``interval`` seconds until the ``with`` ends."""

    pid: int
    liveness: Callable[[], int | None]
    interval: float = 0.5
    probes: list[Probe] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def __enter__(self) -> Self:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            sent = time.monotonic()
            status = self.liveness()
            self.probes.append(Probe(sent, status, time.monotonic() - sent))
            self.rss.append(status_bytes(self.pid, "VmRSS"))
            self._stop.wait(self.interval)

    def failed_probes(self) -> list[Probe]:
        return [probe for probe in self.probes if probe.status != 200]

    def slowest_probe(self) -> float:
        return max((probe.seconds for probe in self.probes), default=0.0)

    def peak_bytes(self) -> int:
        """The process's peak resident memory since it started (VmHWM), never below a sample."""
        return max([status_bytes(self.pid, "VmHWM"), *self.rss])
