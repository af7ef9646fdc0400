"""The hostile management node of ``tests/hostile/server.py`` as a process that tenants' connections point at.

It runs in its own process (as in the client's hostile suite), so what it costs the machine is its own and
the operator's memory is measured without it. Each attack is a context path: a ZStackConnection with
endpoint ``<base>/<attack>`` meets that attack on every request the operator sends, and the server counts
requests per context path (any name counts, also one that is no attack), so a test can show that a
connection sent nothing.
"""

from __future__ import annotations

import json
import re
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from .processes import ManagedProcess, OutputPump, spawn

SERVER = Path(__file__).resolve().parents[1] / "hostile" / "server.py"
_LISTENING = re.compile(r"^hostile (\d+) bystander (\d+)$")
START_TIMEOUT = 60.0  # the server builds its gzip bomb (128 MiB deflated) before it listens


@dataclass(kw_only=True)
class HostileProcess(ManagedProcess):
    """``python tests/hostile/server.py``; ``origin`` is its base URL, ``endpoint(attack)`` a connection's."""

    python: str = sys.executable
    origin: str = field(init=False, default="")

    def start(self) -> Self:
        log = self._open_log()
        self._proc = spawn([self.python, str(SERVER)], log=log, stdout_pipe=True)
        assert self._proc.stdout is not None
        line = OutputPump(self._proc.stdout, sink=log).expect(
            lambda text: bool(_LISTENING.match(text)), START_TIMEOUT
        )
        if line is None:
            self.stop()
            raise RuntimeError(f"the hostile server did not start; log: {self.log_path}")
        self.origin = f"http://127.0.0.1:{line.split()[1]}"
        return self

    def endpoint(self, attack: str) -> str:
        return f"{self.origin}/{attack}"

    def requests(self) -> dict[str, int]:
        """Requests received so far, per context path (and ``bystander`` for the redirect target)."""
        with urllib.request.urlopen(f"{self.origin}/_stats", timeout=10) as response:
            counts: dict[str, int] = json.loads(response.read())
        return counts
