"""Outside views of the operator for bench_core.py: event-loop stalls, tracks set behind its back, and
the moment ZStack holds the tracks we wait for.

The operator exposes no event-loop metric. Its liveness endpoint is served by kopf's aiohttp server on the
operator's one event loop, so a probe request cannot be answered while a coroutine holds the loop: the
slowest probe answer is at least the longest stall that began while a probe was waiting, give or take the
probe interval. It also includes the machine's scheduling delay, so an idle baseline is taken beside it.
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType

from bench_operator_rounds import reads
from harness import SimulatorAdmin

PROBE_INTERVAL = 0.1
PROBE_TIMEOUT = 60.0
OPPOSITE = {"guest": "host", "host": "guest"}


@dataclass(frozen=True)
class Stalls:
    """Liveness answer times in milliseconds: the slowest, the 99th percentile, and how many were taken."""

    max_ms: float
    p99_ms: float
    samples: int
    failed: int


class LoopStallProbe:
    """GETs the liveness URL every ``PROBE_INTERVAL`` s on a thread while the ``with`` block runs.

    One keep-alive connection, so a sample times the operator's answer, not a TCP handshake."""

    def __init__(self, url: str) -> None:
        self._url = urllib.parse.urlsplit(url)
        self._latencies: list[float] = []
        self._failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="liveness-probe", daemon=True)

    def __enter__(self) -> LoopStallProbe:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(PROBE_TIMEOUT + 5)

    def _run(self) -> None:
        host, port = self._url.hostname or "127.0.0.1", self._url.port or 80
        conn = http.client.HTTPConnection(host, port, timeout=PROBE_TIMEOUT)
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                conn.request("GET", self._url.path or "/")
                conn.getresponse().read()
                self._latencies.append(time.perf_counter() - started)
            except (OSError, http.client.HTTPException):
                self._failed += 1
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=PROBE_TIMEOUT)
            self._stop.wait(PROBE_INTERVAL)
        conn.close()

    def result(self) -> Stalls:
        times = sorted(self._latencies) or [0.0]
        return Stalls(
            max_ms=round(1000 * times[-1], 1),
            p99_ms=round(1000 * times[min(len(times) - 1, int(len(times) * 0.99))], 1),
            samples=len(self._latencies),
            failed=self._failed,
        )


def idle_stalls(url: str, seconds: float = 3.0) -> Stalls:
    """The same probe while the operator has nothing to do: the noise floor of the machine."""
    with LoopStallProbe(url) as probe:
        time.sleep(seconds)
    return probe.result()


def set_tracks(admin: SimulatorAdmin, wanted: Mapping[str, str]) -> int:
    """Give each VM its wanted track through the simulator's admin API (behind the operator's back);
    returns how many had to change."""
    current = admin.tracks(wanted)
    changes = [(uuid, track) for uuid, track in wanted.items() if current.get(uuid) != track]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda change: admin.set_track(*change), changes))
    return len(changes)


def every(uuids: Iterable[str], track: str) -> dict[str, str]:
    return dict.fromkeys(uuids, track)


@dataclass(frozen=True)
class Written:
    """Wall-clock seconds after `since` until the last wanted write completed and until `also()` was first
    seen to hold, and the ZStack calls made until both were seen."""

    written_seconds: float
    also_seconds: float
    calls: Counter[str]

    @property
    def seconds(self) -> float:
        return max(self.written_seconds, self.also_seconds)

    @property
    def reads(self) -> int:
        return reads(self.calls)

    @property
    def writes(self) -> int:
        return self.calls["SetVmClockTrack"]


def wait_written(
    admin: SimulatorAdmin,
    wanted: Mapping[str, str],
    since: float,
    *,
    timeout: float,
    also: Callable[[], bool] = lambda: True,
    poll: float = 0.25,
) -> Written:
    """Poll the simulator's completed writes (counted since its last stats reset) until every VM in
    `wanted` was written with its wanted track and `also()` holds. `since` is a ``time.time()``: the
    simulator stamps each write with its wall clock, so the write time is exact; `also` is exact to the
    poll interval."""
    deadline = time.monotonic() + timeout
    also_at: float | None = None
    while time.monotonic() < deadline:
        if also_at is None and also():
            also_at = time.time()
        stats = admin.stats()
        done_at = {w.uuid: w.at for w in stats.writes if wanted.get(w.uuid) == w.track}
        if len(done_at) == len(wanted) and also_at is not None:
            last = max(done_at.values(), default=since)
            return Written(round(last - since, 2), round(also_at - since, 2), Counter(stats.calls))
        time.sleep(poll)
    raise TimeoutError(f"{len(wanted)} VMs not written back within {timeout:.0f}s")
