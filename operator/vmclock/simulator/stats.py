"""What the simulator saw, for tests and benchmarks: calls per API, completed writes, peak concurrency."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from vmclock.simulator.reboots import RebootLog


@dataclass(frozen=True)
class Write:
    """A SetVmClockTrack that completed successfully; `at` is the epoch time it took effect."""

    at: float
    uuid: str
    track: str


@dataclass
class Stats:
    """`calls` counts every request the management node identified as an API (faults in front of it, a
    dropped connection or a proxy 502, never reach it); `max_in_flight` is the peak of concurrent /zstack
    requests being handled, including injected latency."""

    calls: Counter[str] = field(default_factory=Counter)
    writes: list[Write] = field(default_factory=list)
    max_in_flight: int = 0
    in_flight: int = 0
    reboots: RebootLog = field(default_factory=RebootLog)

    def enter(self) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        self.in_flight -= 1

    def record_write(self, uuid: str, track: str) -> None:
        self.writes.append(Write(time.time(), uuid, track))

    def reset(self) -> None:
        """Start counting afresh; requests still in flight count towards the new peak."""
        self.calls.clear()
        self.writes.clear()
        self.max_in_flight = self.in_flight
        self.reboots.reset()

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": dict(self.calls),
            "writes": [{"at": w.at, "uuid": w.uuid, "track": w.track} for w in self.writes],
            "maxInFlight": self.max_in_flight,
            **self.reboots.to_json(),
        }
