"""One memory budget for every ZStack reply in flight in the process, all connections and tenants together
(design §6.6): per-reply caps alone let 64 near-cap replies on one connection take ~380 MiB.

Each request takes a `Lease` before its first body byte and gives it back once the reply is decoded. A
lease grows as the body streams and once more before decoding (replycost says by how much); a grow that
does not fit waits, and the request's own timeout bounds the wait. Two rules keep that from going wrong:

- No deadlock. Leases hold memory while they wait for more, so a grow is granted only when every lease
  could still be completed in some order out of what is left (the banker's algorithm). Each lease states
  the most it may ever need (`claim`, known before the first byte from the size cap or Content-Length),
  and lowers it as it learns more about its reply (`limit`).
- No starvation of small replies. A lease whose claim fits in a small slice of the budget takes its whole
  claim at once, and large leases may never use the last `1/SMALL_SHARE` of the budget. So however many
  large replies one endpoint keeps in flight, the everyday small replies of every other endpoint (job
  polls, writes, logins: a few KiB each) still find room.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

SMALL_SHARE = 8  # large leases leave 1/8 of the budget to small ones
SMALL_LEASES = 4  # a lease is small when its claim fits that slice this many times over


class ReplyBudget:
    """A number of bytes shared by leases; `lease(claim)` for each request, released when it is done."""

    def __init__(self, limit: int) -> None:
        if limit <= 0:
            raise ValueError(f"reply memory budget must be positive, got {limit}")
        self.limit = limit
        self.reserve = limit // SMALL_SHARE
        self.small = self.reserve // SMALL_LEASES
        self.held = 0
        self._leases: set[Lease] = set()
        self._waiting: list[tuple[Lease, int, asyncio.Future[None]]] = []

    @classmethod
    def smallest_holding(cls, claim: int) -> int:
        """The smallest limit under which one lease may claim `claim` bytes."""
        limit = max(1, claim * SMALL_SHARE // (SMALL_SHARE - 1) - SMALL_SHARE)  # just under the answer
        while cls(limit).largest_claim < claim:
            limit += 1
        return limit

    @property
    def largest_claim(self) -> int:
        """The largest claim a lease may make: all of the budget that large leases may use."""
        return self.limit - self.reserve

    @contextmanager
    def lease(self, claim: int) -> Iterator[Lease]:
        """A lease that may grow to `claim` bytes; ValueError if the budget could never grant that much."""
        if claim > self.largest_claim:
            raise ValueError(f"a reply that may need {claim} bytes cannot fit the {self.limit}-byte budget")
        lease = Lease(self, claim)
        self._leases.add(lease)
        try:
            yield lease
        finally:
            self._leases.discard(lease)
            self.held -= lease.held
            lease.held = 0
            self._wake()

    async def _grow(self, lease: Lease, total: int) -> None:
        if self._grantable(lease, total):
            self._grant(lease, total)
            return
        # _wake grants (and counts) it before resolving the future. Granted and then cancelled by the
        # request's timeout in the same turn, the bytes are on the lease, which gives them back on exit.
        waiter = asyncio.get_running_loop().create_future()
        entry = (lease, total, waiter)
        self._waiting.append(entry)
        try:
            await waiter
        finally:
            if entry in self._waiting:
                self._waiting.remove(entry)

    def _grant(self, lease: Lease, total: int) -> None:
        self.held += total - lease.held
        lease.held = total

    def _grantable(self, lease: Lease, total: int) -> bool:
        more = total - lease.held
        if lease.small:
            return self.held + more <= self.limit
        if self.held + more > self.largest_claim:
            return False
        return self._safe(lease, total)

    def _safe(self, asking: Lease, total: int) -> bool:
        """Whether every large lease holding memory could still finish, one after another, if `asking`
        held `total`: small leases hold their whole claim, so they finish and give theirs back first."""
        needs = sorted(
            (lease.claim - held, held)
            for lease in self._leases
            if not lease.small and (held := total if lease is asking else lease.held) > 0
        )
        free = self.largest_claim - sum(held for _, held in needs)
        for need, held in needs:
            if need > free:
                return False
            free += held
        return True

    def _wake(self) -> None:
        """Grant what now fits, oldest first; a waiter that does not fit yet lets younger ones pass."""
        for entry in list(self._waiting):
            lease, total, waiter = entry
            if waiter.done():
                self._waiting.remove(entry)
            elif self._grantable(lease, total):
                self._waiting.remove(entry)
                self._grant(lease, total)
                waiter.set_result(None)


class Lease:
    """One request's share of the budget: `held` bytes now, at most `claim` ever."""

    def __init__(self, budget: ReplyBudget, claim: int) -> None:
        self._budget = budget
        self.claim = claim
        self.held = 0
        # Fixed at the start: the banker's check counts on small leases holding their whole claim.
        self.small = claim <= budget.small

    async def grow_to(self, total: int) -> None:
        """Hold at least `total` bytes (a small lease takes its whole claim), waiting until that fits."""
        if total > self.claim:
            raise ValueError(f"a lease of claim {self.claim} cannot grow to {total} bytes")
        if self.small:
            total = self.claim
        if total > self.held:
            await self._budget._grow(self, total)

    def limit(self, claim: int) -> None:
        """Lower the claim to what the reply is now known to need at most; it never drops below `held`."""
        lowered = max(self.held, min(self.claim, claim))
        if lowered < self.claim:
            self.claim = lowered
            self._budget._wake()


# deploy/base gives the operator 384 MiB and it idles at ~120 MiB: 160 MiB for replies leaves room for
# the watch caches, the connection buffers outside the budget and allocator slack.
DEFAULT_LIMIT = 160 * 1024 * 1024


class _Process:
    budget: ReplyBudget | None = None


def configure(limit: int) -> ReplyBudget:
    """Set the process's budget (`vmclock run --reply-memory-budget`); clients made afterwards share it."""
    _Process.budget = ReplyBudget(limit)
    return _Process.budget


def process_budget() -> ReplyBudget:
    """The budget every client shares unless its options name another (tests do)."""
    return _Process.budget or configure(DEFAULT_LIMIT)
