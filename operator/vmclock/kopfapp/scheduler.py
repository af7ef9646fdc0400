"""When each policy is next due for a drift check, grouped into rounds per connection.

In memory only: after a restart kopf's resume handlers queue every policy anyway. Due times are what makes
observation shareable (design.md §5.5): when one policy of a connection is due, the others due within half of
their interval come along in the same round, so their VMs are read in one batch; after that round they all
share the same next due time, and stay grouped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from vmclock.refs import Ref

PULL_IN = 0.5  # a policy due within this share of its interval joins a round that is starting anyway


class ResyncClock:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._due: dict[Ref, float] = {}

    def record(self, ref: Ref, interval: float) -> None:
        """A reconcile of `ref` just finished: the next drift check is one interval away."""
        self._due[ref] = self._clock() + interval

    def round(self, candidates: Iterable[tuple[Ref, float]]) -> list[Ref]:
        """The policies (with their intervals) to look at now: none unless one is due, then every one due
        soon. Policies never reconciled yet are not due: their create/resume handler queues them."""
        now = self._clock()
        known = [(ref, interval, self._due[ref]) for ref, interval in candidates if ref in self._due]
        if not any(due <= now for _, _, due in known):
            return []
        chosen = [ref for ref, interval, due in known if due <= now + interval * PULL_IN]
        for ref in chosen:
            self._due.pop(ref)  # until its reconcile records the next one
        return chosen

    def forget(self, ref: Ref) -> None:
        self._due.pop(ref, None)

    def __contains__(self, ref: object) -> bool:
        return ref in self._due
