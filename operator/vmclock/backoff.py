"""The one backoff rule of the operator: exponential growth, a cap, and full jitter.

Used by the ZStack client's retries, its job poller's failed polls, the work queue's rate-limited requeues
and the connection re-checks, so that every "try again later" in the process behaves the same way and is
tuned in one place. Full jitter (a uniform delay between 0 and the exponential ceiling) spreads the retries
of many callers that failed together (a management node restart, an API server hiccup) instead of having
them come back in lock-step waves. Nothing here imports the rest of the package, so the ZStack client can
use it without depending on the operator.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Backoff:
    """Attempt n (0-based) waits uniform(floor, min(cap, base * factor**n))."""

    base: float
    cap: float
    factor: float = 2.0
    floor: float = 0.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.floor <= self.base <= self.cap:
            raise ValueError("backoff needs 0 <= floor <= base <= cap")
        if self.factor < 1:
            raise ValueError("backoff factor must be at least 1")

    def ceiling(self, attempt: int) -> float:
        """The longest wait before retry number `attempt`; capped before it can overflow."""
        if attempt <= 0:
            return self.base
        try:
            grown = self.base * self.factor**attempt
        except OverflowError:
            return self.cap
        return min(self.cap, grown)

    def delay(self, attempt: int) -> float:
        return self.rng.uniform(self.floor, self.ceiling(attempt))  # floor <= base <= every ceiling


class FailureCounter:
    """Per-key failure counts for a Backoff: grows with each failure, forgotten on success.

    The work queue and the connection re-checks keep one of these; `forget` is what makes a policy that
    recovered start from the short delay again instead of staying at the cap.
    """

    def __init__(self, backoff: Backoff) -> None:
        self.backoff = backoff
        self._failures: dict[object, int] = {}

    def next_delay(self, key: object) -> float:
        attempt = self._failures.get(key, 0)
        self._failures[key] = attempt + 1
        return self.backoff.delay(attempt)

    def failures(self, key: object) -> int:
        return self._failures.get(key, 0)

    def forget(self, key: object) -> None:
        self._failures.pop(key, None)

    def __len__(self) -> int:
        return len(self._failures)
