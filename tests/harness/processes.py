"""Child processes that can never outlive the test run or the sandbox.

Every child starts in its own session (so a terminal's Ctrl-C reaches only the orchestrator, which then tears
the children down in order) and with ``PR_SET_PDEATHSIG`` (so the kernel kills it if the orchestrator dies
without cleaning up, e.g. on SIGKILL or a pytest-timeout abort).  Stopping signals the whole process group,
never a process name, so nothing else on the machine is touched.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Self

from .procfs import group_members

_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)  # resolved in the parent: the forked child only calls into it
STOP_TIMEOUT = 15.0


def free_port() -> int:
    """A loopback port that was free a moment ago (callers must tolerate the small reuse race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with(parent_pid: int) -> Callable[[], None]:
    """A ``preexec_fn`` asking the kernel to SIGKILL the child when its parent goes away.

    The ``getppid`` check closes the window where the parent died between ``fork`` and ``prctl``.
    """

    def preexec() -> None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


def spawn(
    argv: Sequence[str],
    *,
    log: IO[bytes] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    stdout_pipe: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as a session leader bound to our lifetime.

    ``stdout_pipe`` keeps stdout readable (to parse a "listening on" line); otherwise stdout and stderr both
    go to ``log`` (or are discarded).
    """
    sink = log if log is not None else subprocess.DEVNULL
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if stdout_pipe else sink,
        stderr=sink,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        start_new_session=True,
        # Only prctl/getppid run between fork and exec (no locks taken), which is safe with threads.
        preexec_fn=_die_with(os.getpid()),  # noqa: PLW1509
    )


def stop(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> int:
    """SIGTERM the child's process group, SIGKILL it after ``timeout``; returns the exit code.

    Signalling the group also reaps anything the child itself started.
    """
    if proc.poll() is None:
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
    _signal_group(proc, signal.SIGKILL)  # stragglers in the group, if the leader left any behind
    _wait_group_gone(proc.pid, timeout)
    return proc.returncode


def _wait_group_gone(pgid: int, timeout: float) -> None:
    """Signals are delivered asynchronously: return only once no live member of the group is left, so a
    caller that stops a process can rely on everything it started being gone."""
    deadline = time.monotonic() + timeout
    while group_members(pgid):
        if time.monotonic() > deadline:
            raise RuntimeError(f"process group {pgid} still has live members after SIGKILL")
        time.sleep(0.02)


def kill(proc: subprocess.Popen[bytes]) -> int:
    """SIGKILL the child's process group at once (a crash, as far as the child can tell)."""
    _signal_group(proc, signal.SIGKILL)
    code = proc.wait()
    _wait_group_gone(proc.pid, STOP_TIMEOUT)
    return code


def _signal_group(proc: subprocess.Popen[bytes], signum: int) -> None:
    # The child called setsid(), so its pid is its process group id.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signum)


class OutputPump:
    """Reads a child's output pipe on a thread, so the pipe never fills up and blocks the child.

    Every line is kept in :attr:`lines`, copied to ``sink`` if given (until the sink is closed) and can be
    awaited with :meth:`expect`.  Reading on a thread, rather than ``select`` plus ``readline``, matters:
    ``readline`` buffers whatever else arrived in the same chunk, and ``select`` never reports it again.
    """

    def __init__(self, stream: IO[bytes], sink: IO[bytes] | None = None) -> None:
        self.lines: list[str] = []
        self._stream, self._sink = stream, sink
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        for line in iter(self._stream.readline, b""):
            self.lines.append(line.decode(errors="replace").rstrip("\n"))
            if self._sink is not None:
                with contextlib.suppress(ValueError):  # the sink was closed: the child is going away
                    self._sink.write(line)
                    self._sink.flush()
            self._queue.put(line)
        self._queue.put(None)

    def expect(self, wanted: Callable[[str], bool], timeout: float) -> str | None:
        """The next line for which ``wanted`` holds, or None at end of output or after ``timeout``."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                raw = self._queue.get(timeout=remaining)
            except queue.Empty:
                return None
            if raw is None:
                self._queue.put(None)  # stay at end of output for later calls
                return None
            line = raw.decode(errors="replace").rstrip("\n")
            if wanted(line):
                return line
        return None

    def join(self, timeout: float) -> None:
        """Wait until the child closed its end of the pipe (normally: it exited)."""
        self._thread.join(timeout)


@dataclass(kw_only=True)
class ManagedProcess:
    """Shared lifecycle of the harness's long-running children: one log file (appended across restarts),
    graceful ``stop()``, crash-like ``kill()`` and context-manager use.  Subclasses implement ``start()``.
    """

    log_path: Path
    _proc: subprocess.Popen[bytes] | None = field(init=False, default=None, repr=False)
    _log: IO[bytes] | None = field(init=False, default=None, repr=False)

    def start(self) -> Self:
        raise NotImplementedError

    def _open_log(self) -> IO[bytes]:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        return self._log

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> int | None:
        """Graceful stop; returns the exit code (None if it was not running)."""
        return self._end(stop)

    def kill(self) -> int | None:
        """SIGKILL, as a crash or an OOM kill would; returns the exit code."""
        return self._end(kill)

    def _end(self, how: Callable[[subprocess.Popen[bytes]], int]) -> int | None:
        code = None
        if self._proc is not None:
            code = how(self._proc)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
