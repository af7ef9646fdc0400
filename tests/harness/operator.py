"""The operator as a real process (``python -m vmclock run``), exactly as the container runs it.

Its stdout and stderr go to one log file that survives restarts, so a test can later scan everything the
operator ever printed (for example for leaked secrets).
"""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .processes import ManagedProcess, free_port, spawn

START_TIMEOUT = 60.0


class OperatorError(RuntimeError):
    """The operator did not become live, or died."""


@dataclass(kw_only=True)
class OperatorProcess(ManagedProcess):
    """``python -m vmclock run -A`` against ``kubeconfig``; liveness and metrics on free loopback ports."""

    kubeconfig: Path
    pod_name: str = "vmclock-e2e"
    extra_args: tuple[str, ...] = ()
    python: str = sys.executable
    cwd: Path | None = None
    liveness_port: int = field(init=False, default=0)
    metrics_port: int = field(init=False, default=0)

    @property
    def liveness_url(self) -> str:
        return f"http://127.0.0.1:{self.liveness_port}/healthz"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def argv(self) -> list[str]:
        return [
            self.python,
            "-m",
            "vmclock",
            "run",
            "-A",
            "--liveness",
            self.liveness_url,
            "--metrics-port",
            str(self.metrics_port),
            "--log-format",
            "json",
            "--allow-insecure-endpoints",  # the simulator serves plain http:// on loopback
            *self.extra_args,
        ]

    def environment(self) -> dict[str, str]:
        """The child's environment; a subclass may replace it (e.g. with a container's ``env``)."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "POD_NAME": self.pod_name}

    def start(self) -> OperatorProcess:
        """Start and wait until the liveness endpoint answers 200."""
        if self.alive():
            raise OperatorError("the operator is already running")
        self.liveness_port, self.metrics_port = free_port(), free_port()
        self._proc = spawn(self.argv(), log=self._open_log(), env=self.environment(), cwd=self.cwd)
        try:
            self._wait_live()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_live(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if not self.alive():
                raise OperatorError(
                    f"operator exited during start-up; log: {self.log_path}\n{self.log_tail()}"
                )
            if self.liveness_status() == 200:
                return
            time.sleep(0.2)
        raise OperatorError(f"operator not live within {START_TIMEOUT:.0f}s; log: {self.log_path}")

    def liveness_status(self) -> int | None:
        """HTTP status of the liveness endpoint, or None when nothing answers."""
        try:
            with urllib.request.urlopen(self.liveness_url, timeout=5) as response:
                status: int = response.status
                return status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return None

    def restart(self) -> OperatorProcess:
        self.stop()
        return self.start()
