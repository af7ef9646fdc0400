"""Starting daemons so they can always be reaped, and reaping them by process group.

Each daemon leads its own session (so a terminal's Ctrl-C or hang-up never reaches it and ``killpg`` gets
everything it may fork).  A daemon owned by a live Python process (pytest, ``controlplane run``) also gets
``PR_SET_PDEATHSIG=SIGKILL``: if the owner is SIGKILLed, the kernel kills the daemon too, so nothing leaks
even when no ``finally`` block runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

PR_SET_PDEATHSIG = 1
POLL_SECONDS = 0.05


def _die_with_parent(parent: int) -> Callable[[], None]:
    """``preexec_fn`` for an owned daemon: SIGKILL it when the process that started it dies.

    libc is loaded here, before the fork, so the child only makes two system calls and takes no lock
    another thread could have held at fork time.
    """
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        if prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            os._exit(127)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(127)

    return preexec


def spawn(argv: list[str], log: Path, *, owned: bool) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session with output appended to ``log``.

    ``owned=False`` is for ``controlplane start``: the daemon must outlive the command that started it and
    is later found through pid files.
    """
    with log.open("ab") as output:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent(os.getpid()) if owned else None,  # noqa: PLW1509 (lock-free, see above)
        )


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (which may contain spaces), or None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rindex(")") + 2 :].split()


def start_time(pid: int) -> str | None:
    """Kernel start time (field 22) of a live ``pid``: tells a live owner apart from a recycled pid.

    ``None`` for a zombie too: a SIGKILLed owner that nobody has waited for yet is dead.
    """
    fields = _stat_fields(pid)
    return fields[19] if fields and fields[0] != "Z" else None


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""


def live_pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def pids_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains ``text`` (a run directory names all its daemons)."""
    return [pid for pid in live_pids() if text in cmdline(pid)]


def wait_until_gone(marker: str, timeout: float) -> list[int]:
    """Wait for every process mentioning ``marker`` to exit; returns the survivors (empty on success)."""
    deadline = time.monotonic() + timeout
    while (left := pids_mentioning(marker)) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    return left


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group; zombies are dead and only wait for their reaper."""
    members = []
    for pid in live_pids():
        fields = _stat_fields(pid)
        if fields and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(pid)
    return members


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _wait_empty(pgid: int, deadline: float, child: subprocess.Popen[bytes] | None) -> bool:
    while time.monotonic() < deadline:
        if child is not None:
            child.poll()  # reap our own child so it does not linger as a zombie group member
        if not group_members(pgid):
            return True
        time.sleep(POLL_SECONDS)
    return False


def terminate_group(pgid: int, timeout: float, child: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM the group, give it ``timeout`` seconds to exit, then SIGKILL whatever is left."""
    _signal_group(pgid, signal.SIGTERM)
    if not _wait_empty(pgid, time.monotonic() + timeout, child):
        _signal_group(pgid, signal.SIGKILL)
        _wait_empty(pgid, time.monotonic() + timeout, child)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=timeout)
