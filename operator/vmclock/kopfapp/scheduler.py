"""When each policy is next due for a drift check, and how to wake a connection's resync loop early.

In memory only: after a restart kopf's resume handlers reconcile every policy anyway. A policy whose last
reconcile left something retryable (a Pending VM) is looked at again sooner, backing off exponentially up to
its normal interval, instead of waiting a full resync interval.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

Key = tuple[str, str]
RETRY_BASE_SECONDS = 5.0


class ResyncScheduler:
    def __init__(self, clock: Callable[[], float] = time.monotonic, rng: random.Random | None = None) -> None:
        self._clock = clock
        self._rng = rng or random.Random()
        self._due: dict[Key, float] = {}
        self._retries: dict[Key, int] = {}
        self._wakeups: dict[Key, asyncio.Event] = {}

    def record(self, key: Key, interval: float, *, retry_soon: bool) -> None:
        """A reconcile of `key` just finished; plan the next look."""
        if retry_soon:
            attempt = self._retries.get(key, 0)
            self._retries[key] = attempt + 1
            delay = min(interval, RETRY_BASE_SECONDS * 2**attempt)
        else:
            self._retries.pop(key, None)
            delay = interval
        self._due[key] = self._clock() + delay

    def is_due(self, key: Key, interval: float) -> bool:
        """First sight (no reconcile recorded yet) spreads policies over the interval instead of a burst."""
        due = self._due.setdefault(key, self._clock() + interval * self._rng.uniform(0.5, 1.0))
        return self._clock() >= due

    def kick(self, key: Key, connection: Key) -> None:
        """Make `key` due now and wake its connection's loop."""
        self._due[key] = self._clock()
        self.wakeup(connection).set()

    def wakeup(self, connection: Key) -> asyncio.Event:
        return self._wakeups.setdefault(connection, asyncio.Event())

    def forget(self, key: Key) -> None:
        self._due.pop(key, None)
        self._retries.pop(key, None)

    def forget_connection(self, connection: Key) -> None:
        self._wakeups.pop(connection, None)
