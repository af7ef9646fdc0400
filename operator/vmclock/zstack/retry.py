"""Bounded retries, waiting by the operator's one backoff rule (vmclock.backoff: exponential, capped,
full jitter) so that many callers that failed together do not come back in lock-step waves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from vmclock.backoff import Backoff
from vmclock.zstack.errors import ZStackError

log = logging.getLogger(__name__)

T = TypeVar("T")


def never_recover(_: ZStackError) -> bool:
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries in total; retry number n (0-based) waits `backoff.delay(n)`."""

    attempts: int
    backoff: Backoff

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
                pause = self.backoff.delay(retries)
                retries += 1
                log.info(
                    "%s: %s, retry %d/%d in %.2fs", operation, err.code, retries, self.attempts - 1, pause
                )
                await asyncio.sleep(pause)
