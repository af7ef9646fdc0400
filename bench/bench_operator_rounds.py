"""Resync rounds seen from outside the operator: bursts of ZStack calls and of finished reconciles.

The operator does not announce its rounds. A round shows as a burst: the batched reads of the round, then
one "VmClockPolicy NS/NAME generation G: N writes" log line per policy in it. Sampling the simulator's
per-API call counts and the log a few times a second, and cutting wherever nothing happened for ``GAP``
seconds, turns that into bursts: which policies were reconciled in each one and what each one cost.
A burst is only approximately one operator round: two rounds less than ``GAP`` apart count as one, and a
slow reconcile can log its line more than ``GAP`` after its reads. Costs "per round" are therefore taken
per cycle (every policy checked once: totals x policies / reconciles), which bursts do not affect.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from bench_operator_probes import Reconcile, ReconcileLog

POLL = 0.2
GAP = 1.5
WRITE_APIS = frozenset({"SetVmClockTrack", "UpdateResourceConfig", "DeleteResourceConfig"})
T = TypeVar("T")


@dataclass
class Burst:
    """Seconds from the window's start, the ZStack calls made, the policies reconciled (one per reconcile)."""

    started: float
    ended: float
    calls: Counter[str] = field(default_factory=Counter)
    policies: list[str] = field(default_factory=list)
    writes_logged: int = 0


@dataclass(frozen=True)
class Window(Generic[T]):
    """Whole bursts, and the caller's snapshots (e.g. API server write counts) at open and at close."""

    seconds: float
    bursts: list[Burst]
    opened: T
    closed: T

    @property
    def calls(self) -> Counter[str]:
        return sum((b.calls for b in self.bursts), Counter())

    @property
    def reconciles(self) -> int:
        return sum(len(b.policies) for b in self.bursts)


def reads(calls: Counter[str]) -> int:
    """Every ZStack call that is not a write (queries, version and session calls, job polls)."""
    return sum(n for api, n in calls.items() if api not in WRITE_APIS)


class _Meter(Generic[T]):
    """What a meter samples: `calls()` (cumulative ZStack calls by API), the reconcile `log`, and
    `snapshot()`, taken only when its window opens and closes (it may be slow, e.g. /metrics)."""

    def __init__(
        self,
        calls: Callable[[], Counter[str]],
        log: ReconcileLog,
        snapshot: Callable[[], T],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._calls = calls
        self._log = log
        self._snapshot = snapshot
        self._clock = clock


class BurstMeter(_Meter[T]):
    """Samples calls and the log until `done(bursts)` at a quiet moment.

    The window opens at the first quiet moment (no call and no reconcile for ``GAP`` seconds), so it never
    starts in the middle of a round, and closes at a quiet moment too, so every round in it is whole.
    """

    def measure(self, done: Callable[[list[Burst]], bool], timeout: float) -> Window[T]:
        deadline = self._clock() + timeout
        offset, counts = self._log.offset(), self._calls()
        quiet_since = opened = self._clock()
        bursts: list[Burst] | None = None  # None until the first quiet moment opens the window
        opening: T | None = None
        while self._clock() < deadline:
            time.sleep(POLL)
            now = self._clock()
            reconciles, offset = self._log.read(offset)
            latest = self._calls()
            grown = latest - counts
            counts = latest
            if grown or reconciles:
                if bursts is not None:
                    if not bursts or now - quiet_since >= GAP:
                        bursts.append(Burst(started=now - opened, ended=now - opened))
                    current = bursts[-1]
                    current.ended = now - opened
                    current.calls.update(grown)
                    current.policies.extend(r.name for r in reconciles)
                    current.writes_logged += sum(r.writes for r in reconciles)
                quiet_since = now
            elif now - quiet_since >= GAP:
                if bursts is None:
                    bursts, opened, opening = [], now, self._snapshot()
                elif bursts and done(bursts) and opening is not None:
                    return Window(round(now - opened, 2), bursts, opening, self._snapshot())
        raise TimeoutError(f"the wanted resync rounds did not happen within {timeout:.0f}s")


class ReconcileWindow(_Meter[T]):
    """Counts ZStack calls against finished reconciles over a window bounded by reconcile log lines.

    `BurstMeter` needs a quiet moment between rounds, and 1,000 policies resyncing every 10 s leave none:
    their rounds run back to back. Here the window opens right after a reconcile's line is read and closes
    as soon as `reconciles` more lines were read, quiet or not, so it always ends. Costs per round are then
    totals x policies / reconciles, as with bursts. For one policy this is exact (the window holds the
    reads of exactly the rounds whose lines it counts); with many, a batch read shared by reconciles on
    both sides of an edge is counted whole or not at all, an error of at most one batch over the window,
    small against several rounds.
    """

    def measure(self, reconciles: int, timeout: float) -> Window[T]:
        deadline = self._clock() + timeout
        offset = self._log.offset()
        while True:  # open: right after a reconcile's line, before whatever it prompts next
            found, offset = self._wait(offset, deadline)
            if found:
                break
        counts, opening, opened = self._calls(), self._snapshot(), self._clock()
        burst = Burst(started=0.0, ended=0.0)
        while len(burst.policies) < reconciles:
            found, offset = self._wait(offset, deadline)
            burst.policies.extend(r.name for r in found)
            burst.writes_logged += sum(r.writes for r in found)
        burst.calls = self._calls() - counts
        burst.ended = self._clock() - opened
        return Window(round(burst.ended, 2), [burst], opening, self._snapshot())

    def _wait(self, offset: int, deadline: float) -> tuple[list[Reconcile], int]:
        if self._clock() >= deadline:
            raise TimeoutError("the wanted reconciles were not logged in time")
        time.sleep(POLL)
        return self._log.read(offset)
