"""Bounded retries with full-jitter exponential backoff.

Full jitter (a uniform delay between 0 and the exponential ceiling) spreads the retries of many concurrent
callers that failed together (a management node restart, a proxy hiccup) instead of having them return in
lock-step waves.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from vmclock.zstack.errors import ZStackError

log = logging.getLogger(__name__)

T = TypeVar("T")


def never_recover(_: ZStackError) -> bool:
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries in total; the n-th retry waits uniform(0, min(max_delay, base_delay * 2**n))."""

    attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 5.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def ceiling(self, retry: int) -> float:
        """The largest delay before retry number `retry` (0 for the first retry)."""
        return min(self.max_delay, self.base_delay * 2.0**retry)

    def delay(self, retry: int) -> float:
        return self.rng.uniform(0.0, self.ceiling(retry))

    async def run(
        self,
        attempt: Callable[[], Awaitable[T]],
        *,
        operation: str,
        recover: Callable[[ZStackError], bool] = never_recover,
    ) -> T:
        """Call `attempt` until it succeeds, fails terminally, or the attempts are used up.

        `recover(error)` may repair the cause (e.g. drop an expired session so the next attempt logs in)
        and return True to try again at once, without spending an attempt.
        """
        retries = 0
        while True:
            try:
                return await attempt()
            except ZStackError as err:
                if recover(err):
                    log.info("%s: %s, retrying after recovery", operation, err.code)
                    continue
                if not err.retryable or retries + 1 >= self.attempts:
                    raise
                pause = self.delay(retries)
                retries += 1
                log.info(
                    "%s: %s, retry %d/%d in %.2fs", operation, err.code, retries, self.attempts - 1, pause
                )
                await asyncio.sleep(pause)
