"""A work queue with controller-runtime's guarantees, shared fairly across flows, for asyncio.

Every path that wants a policy looked at (kopf handlers, resync rounds, kicks from other policies, a
connection turning ready or broken, a deletion) only calls `add`; workers `get` keys and call `done`.
The guarantees, as in client-go's workqueue:
- one at a time per key: a key being processed is never handed to a second worker;
- nothing lost: an `add` while the key is processed marks it dirty, and `done` queues it again at once; a
  key whose object turned out to be gone (`forget`) keeps any such mark, so a re-created object is seen;
- no duplicates: a key queued several times is processed once (requests coalesce);
- delayed adds (`add_after`) keep only the earliest wake-up per key;
- rate-limited requeues (`add_rate_limited`) back off per key with the shared full-jitter Backoff until
  `forget` resets them, so a failing policy slows down alone and a recovered one starts fresh.

Fairness (design.md §5.11): each key belongs to a flow (the policy's connection, so a tenant's management
node). Queued keys wait in a FIFO per flow, and workers take flows round-robin, so a flow with 1,000 queued
keys delays another flow's one by at most one turn. A flow may hold at most `flow_cap` workers, and fewer
when several flows are busy (an equal share of `workers`): a slow or hostile management node can hold only
its share, and a new flow's key waits at most about one reconcile (each reconcile is bounded by a deadline).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Generic, Protocol, TypeVar

from vmclock.backoff import Backoff, FailureCounter

K = TypeVar("K", bound=Hashable)

DEFAULT_BACKOFF = Backoff(base=1.0, cap=300.0)


class ShutDown(Exception):
    """`get` on a queue that was shut down."""


class QueueObserver(Protocol):
    """What the queue reports for controller-runtime's `workqueue_*` metrics."""

    def queue_added(self) -> None: ...

    def queue_retried(self) -> None: ...

    def queue_waited(self, seconds: float) -> None: ...

    def work_took(self, seconds: float) -> None: ...


class _Unobserved:
    def queue_added(self) -> None:
        return None

    def queue_retried(self) -> None:
        return None

    def queue_waited(self, seconds: float) -> None:
        return None

    def work_took(self, seconds: float) -> None:
        return None


class WorkQueue(Generic[K]):
    def __init__(
        self,
        backoff: Backoff = DEFAULT_BACKOFF,
        clock: Callable[[], float] = time.monotonic,
        *,
        workers: int | None = None,
        flow_cap: int | None = None,
        flow_of: Callable[[K], Hashable] | None = None,
        observer: QueueObserver | None = None,
    ) -> None:
        self._clock = clock
        self._workers = max(1, workers or sys.maxsize)  # None: as many as ask (no fair sharing needed)
        self._flow_cap = max(1, flow_cap or self._workers)
        self._flow_of: Callable[[K], Hashable] = flow_of or (lambda key: None)
        self._observer: QueueObserver = observer or _Unobserved()
        self._flows: dict[Hashable, deque[K]] = {}
        self._turns: deque[Hashable] = deque()  # flows with queued keys, in round-robin order
        self._queued_in: dict[K, Hashable] = {}
        self._queued_at: dict[K, float] = {}
        self._dirty: set[K] = set()
        self._processing: dict[K, tuple[Hashable, float]] = {}
        self._active: Counter[Hashable] = Counter()
        self._requested: dict[K, float] = {}
        self._timers: dict[K, tuple[float, asyncio.TimerHandle]] = {}
        self._failures = FailureCounter(backoff)
        self._wakeup = asyncio.Event()
        self._shut = False
        self._paused = False

    def add(
        self, key: K, *, continuing: bool = False, since: float | None = None, flow: Hashable | None = None
    ) -> None:
        """Request a look at `key` now; coalesces with a pending request, never lost while it is processed.
        `continuing`: the work goes on where it stopped (a cut slice), so it is no new request, and what
        was observed for the last one still answers it. `since`: the request is about the world as of
        that earlier moment (an operator start), so an observation taken after it answers the request;
        it never relaxes a later request of the key. `flow`: the caller knows the key's flow better than
        `flow_of` can yet (a key nothing was learnt of since the start)."""
        if self._shut:
            return
        if not continuing or key not in self._requested:
            asked = self._clock() if since is None else max(since, self._requested.get(key, since))
            self._requested[key] = asked
        self._cancel_timer(key)
        if key in self._dirty:
            return
        self._observer.queue_added()
        self._dirty.add(key)
        if key in self._processing:
            return  # `done` puts it back
        self._enqueue(key, flow)

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
        self._observer.queue_retried()
        delay = self._failures.next_delay(key)
        self.add_after(key, delay)
        return delay

    def promote(self, keys: Iterable[K]) -> None:
        """Move these keys, where they are queued now, to the front of their flows (in the order given):
        work known to be needed goes before work that will likely find nothing to do. Fairness across
        flows is untouched; keys being processed or waiting for a delayed add stay where they are."""
        firsts: dict[Hashable, list[K]] = {}
        for key in dict.fromkeys(keys):
            flow = self._queued_in.get(key)
            if flow is not None:
                firsts.setdefault(flow, []).append(key)
        for flow, first in firsts.items():
            queue, chosen = self._flows[flow], set(first)
            rest = [key for key in queue if key not in chosen]
            queue.clear()
            queue.extend(first + rest)

    def forget(self, key: K, *, gone: bool = False) -> None:
        """The key succeeded: its next failure starts from the shortest backoff again. `gone`: its object
        no longer exists, so its wake-ups go too; a request made meanwhile (a dirty mark: say, the create
        of a namesake) is kept, as controller-runtime's Forget keeps it."""
        self._failures.forget(key)
        if gone:
            self._cancel_timer(key)
            if key not in self._dirty:
                self._requested.pop(key, None)

    def failures(self, key: K) -> int:
        return self._failures.failures(key)

    def requested_at(self, key: K) -> float:
        """When `key` was last asked for; an observation taken after this moment answers the request."""
        return self._requested.get(key, self._clock())

    async def get(self) -> K:
        while True:
            if self._shut:
                raise ShutDown
            key = self._take()
            if key is not None:
                return key
            self._wakeup.clear()
            await self._wakeup.wait()

    def done(self, key: K) -> None:
        flow, started = self._processing.pop(key, (None, self._clock()))
        self._observer.work_took(self._clock() - started)
        self._active[flow] -= 1
        if self._active[flow] <= 0:
            del self._active[flow]
        if key in self._dirty and not self._shut:
            self._enqueue(key)
        self._notify()  # a worker slot of this flow is free: a key that waited for it may go

    def pause(self) -> None:
        """Hand out nothing until `resume`: requests and wake-ups are still kept (they only queue keys),
        so nothing is lost, but no reconcile starts. For a standby replica (kopf peering)."""
        self._paused = True

    def resume(self) -> None:
        self._paused = False
        self._notify()

    @property
    def paused(self) -> bool:
        return self._paused

    def shut_down(self) -> None:
        self._shut = True
        for key in list(self._timers):
            self._cancel_timer(key)
        self._notify()

    def is_processing(self, key: K) -> bool:
        return key in self._processing

    def pending(self) -> int:
        """Keys queued now plus keys waiting for a delayed add (for metrics and tests)."""
        return len(self._queued_in) + len(self._timers)

    def depth(self) -> int:
        return len(self._queued_in)

    def running_since(self) -> Sequence[float]:
        """When each key being processed now was handed out (for the unfinished-work metrics)."""
        return [started for _, started in self._processing.values()]

    def active(self) -> int:
        return len(self._processing)

    def __contains__(self, key: object) -> bool:
        return key in self._dirty or key in self._processing or key in self._timers

    def _enqueue(self, key: K, flow: Hashable | None = None) -> None:
        flow = self._flow_of(key) if flow is None else flow
        queue = self._flows.get(flow)
        if queue is None:
            queue = self._flows[flow] = deque()
            self._turns.append(flow)
        queue.append(key)
        self._queued_in[key] = flow
        self._queued_at[key] = self._clock()
        self._notify()

    def _cap(self) -> int:
        """Workers one flow may hold now: its share while several flows are busy, `flow_cap` at most."""
        busy = len(set(self._turns) | set(self._active))
        return max(1, min(self._flow_cap, self._workers // max(1, busy)))

    def _take(self) -> K | None:
        """The head of the first flow, in round-robin order, that is below its worker share."""
        if self._paused or len(self._processing) >= self._workers:
            return None
        cap = self._cap()
        for _ in range(len(self._turns)):
            flow = self._turns[0]
            self._turns.rotate(-1)
            if self._active[flow] >= cap:
                continue
            queue = self._flows[flow]
            key = queue.popleft()
            if not queue:
                del self._flows[flow]
                self._turns.remove(flow)
            del self._queued_in[key]
            self._observer.queue_waited(self._clock() - self._queued_at.pop(key))
            self._dirty.discard(key)
            self._processing[key] = (flow, self._clock())
            self._active[flow] += 1
            return key
        return None

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def _cancel_timer(self, key: K) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer[1].cancel()

    def _notify(self) -> None:
        self._wakeup.set()
