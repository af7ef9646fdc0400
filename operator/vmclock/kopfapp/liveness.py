"""Liveness: fail when a resync loop has stopped ticking.

kopf's `--liveness` endpoint only proves that its HTTP task runs. Our probe adds the signal that matters:
every connection's resync loop beats once per tick; if one has not beaten for `STALL_SECONDS` (many ticks),
the operator is wedged and the probe raises. The probe handler is registered with errors=PERMANENT, so kopf
answers the liveness request with HTTP 500 at once instead of retrying, and Kubernetes restarts the pod.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from vmclock.refs import Ref

STALL_SECONDS = 120.0


class OperatorStalled(RuntimeError):
    pass


class Heartbeats:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._beats: dict[Ref, float] = {}

    def beat(self, key: Ref) -> None:
        self._beats[key] = self._clock()

    def forget(self, key: Ref) -> None:
        self._beats.pop(key, None)

    def check(self, stall_seconds: float = STALL_SECONDS) -> dict[str, int]:
        """The probe payload; raises OperatorStalled naming the loops that stopped."""
        now = self._clock()
        stalled = sorted(f"{ns}/{name}" for (ns, name), at in self._beats.items() if now - at > stall_seconds)
        if stalled:
            raise OperatorStalled(f"resync loops stalled for over {stall_seconds:.0f}s: {', '.join(stalled)}")
        return {"resyncLoops": len(self._beats)}
