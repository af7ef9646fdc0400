"""A work queue with controller-runtime's guarantees, for asyncio.

Every path that wants a policy looked at (kopf handlers, resync rounds, kicks from other policies, a
connection turning ready or broken, an owner going away) only calls `add`; workers `get` keys and call `done`.
The guarantees, as in client-go's workqueue:
- one at a time per key: a key being processed is never handed to a second worker;
- nothing lost: an `add` while the key is processed marks it dirty, and `done` queues it again at once;
- no duplicates: a key queued several times is processed once (requests coalesce);
- delayed adds (`add_after`) keep only the earliest wake-up per key;
- rate-limited requeues (`add_rate_limited`) back off per key with the shared full-jitter Backoff until
  `forget` resets them, so a failing policy slows down alone and a recovered one starts fresh.
It also records when a key was last requested, so a reconcile can tell whether a shared observation taken
by another worker is recent enough to answer its request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar

from vmclock.backoff import Backoff, FailureCounter

K = TypeVar("K", bound=Hashable)

DEFAULT_BACKOFF = Backoff(base=1.0, cap=300.0)


class ShutDown(Exception):
    """`get` on a queue that was shut down."""


class QueueObserver(Protocol):  # metrics: what the queue reports for controller-runtime's workqueue_*
    def queue_added(self) -> None: ...
    def queue_retried(self) -> None: ...
    def queue_waited(self, seconds: float) -> None: ...
    def work_took(self, seconds: float) -> None: ...


class WorkQueue(Generic[K]):
    def __init__(
        self,
        backoff: Backoff = DEFAULT_BACKOFF,
        clock: Callable[[], float] = time.monotonic,
        *,
        observer: QueueObserver | None = None,
    ) -> None:
        self._clock = clock
        self._metrics = observer  # metrics: controller-runtime's workqueue_* families
        self._queued_at: dict[K, float] = {}  # metrics: for workqueue_queue_duration_seconds
        self._started: dict[K, float] = {}  # metrics: for workqueue_work_duration_seconds and the gauges
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._requested: dict[K, float] = {}
        self._timers: dict[K, tuple[float, asyncio.TimerHandle]] = {}
        self._failures = FailureCounter(backoff)
        self._wakeup = asyncio.Event()
        self._shut = False

    def add(self, key: K) -> None:
        """Request a look at `key` now; coalesces with a pending request, never lost while it is processed."""
        if self._shut:
            return
        self._requested[key] = self._clock()
        self._cancel_timer(key)
        if key in self._dirty:
            return
        self._dirty.add(key)
        self._queued_at[key] = self._clock()  # metrics
        if self._metrics is not None:  # metrics: counted once per entry, as client-go does
            self._metrics.queue_added()
        if key in self._processing:
            return  # `done` puts it back
        self._queue.append(key)
        self._notify()

    def add_after(self, key: K, delay: float) -> None:
        """Request a look in `delay` seconds; an earlier pending wake-up for the key wins."""
        if self._shut:
            return
        if delay <= 0:
            self.add(key)
            return
        due = self._clock() + delay
        current = self._timers.get(key)
        if current is not None and current[0] <= due:
            return
        self._cancel_timer(key)
        handle = asyncio.get_running_loop().call_later(delay, self._fire, key)
        self._timers[key] = (due, handle)

    def add_rate_limited(self, key: K) -> float:
        """Requeue after a failure, backing off per key; returns the delay chosen."""
        delay = self._failures.next_delay(key)
        if self._metrics is not None:  # metrics
            self._metrics.queue_retried()
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """The key succeeded: its next failure starts from the shortest backoff again."""
        self._failures.forget(key)

    def failures(self, key: K) -> int:
        return self._failures.failures(key)

    def discard(self, key: K) -> None:
        """Drop every trace of a key whose object is gone (only from the worker that processes it)."""
        self._cancel_timer(key)
        self._failures.forget(key)
        self._requested.pop(key, None)
        self._dirty.discard(key)
        self._queued_at.pop(key, None)  # metrics
        if key not in self._processing:
            with contextlib.suppress(ValueError):
                self._queue.remove(key)

    def requested_at(self, key: K) -> float:
        """When `key` was last asked for; an observation taken after this moment answers the request."""
        return self._requested.get(key, self._clock())

    async def get(self) -> K:
        while not self._queue and not self._shut:
            self._wakeup.clear()
            await self._wakeup.wait()
        if self._shut:
            raise ShutDown
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        now = self._clock()  # metrics
        self._started[key] = now
        queued_at = self._queued_at.pop(key, now)
        if self._metrics is not None:
            self._metrics.queue_waited(now - queued_at)
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        started = self._started.pop(key, None)  # metrics
        if started is not None and self._metrics is not None:
            self._metrics.work_took(self._clock() - started)
        if key in self._dirty and not self._shut:
            self._queue.append(key)
            self._notify()

    def shut_down(self) -> None:
        self._shut = True
        for key in list(self._timers):
            self._cancel_timer(key)
        self._notify()

    def is_processing(self, key: K) -> bool:
        return key in self._processing

    def depth(self) -> int:  # metrics: workqueue_depth (keys ready to be taken, as client-go counts)
        return len(self._queue)

    def running_since(self) -> list[float]:  # metrics: when each key being processed was taken
        return list(self._started.values())

    def active(self) -> int:  # metrics: controller_runtime_active_workers
        return len(self._processing)

    def pending(self) -> int:
        """Keys queued now plus keys waiting for a delayed add (for metrics and tests)."""
        return len(self._queue) + len(self._timers)

    def __contains__(self, key: object) -> bool:
        return key in self._dirty or key in self._processing or key in self._timers

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def _cancel_timer(self, key: K) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer[1].cancel()

    def _notify(self) -> None:
        self._wakeup.set()
