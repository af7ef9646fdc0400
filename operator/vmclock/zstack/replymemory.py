"""One request's share of the process's reply budget, from its first body byte until its reply is decoded
(design §6.6).

The share is taken once the headers say how large the body may be, before a byte of it is read: a reply
that declares a few KiB makes a small claim (which budget.py always finds room for) and one without a
length claims what the size cap allows. Every wait is bounded by the request's own deadline (the one
aiohttp applies from when the request goes on the wire) and ends in the CLIENT.TIMEOUT a slow endpoint gets.
"""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from types import TracebackType
from typing import Self

from vmclock.zstack import replycost
from vmclock.zstack.budget import Lease, ReplyBudget
from vmclock.zstack.errors import TIMEOUT, ZStackError


class ReplyMemory:
    """`with ReplyMemory(...) as memory:` around the exchange and the decoding; gives all back on exit."""

    def __init__(self, budget: ReplyBudget, operation: str) -> None:
        self._budget = budget
        self._operation = operation
        self._deadline = 0.0
        self._lease: Lease | None = None
        self._declared: int | None = None
        self._exit = ExitStack()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._exit.close()

    async def start(self, declared: int | None, cap: int, deadline: float) -> None:
        """Claim what a body of `declared` bytes (or, undeclared, up to `cap`) may cost; a declared body's
        reading is held at once. `deadline`, in loop time, ends every wait."""
        self._deadline = deadline
        self._declared = declared
        claim = replycost.most(cap if declared is None else declared)
        self._lease = self._exit.enter_context(self._budget.lease(claim))
        if declared is not None:
            await self._hold(replycost.reading(declared))

    async def reading(self, size: int) -> None:
        """Room for a body of `size` bytes before reading up to there (already held for a declared one)."""
        if self._declared is None:
            await self._hold(replycost.reading(size))

    async def decoding(self, raw: bytes, values: int) -> None:
        """Room for decoding `raw` (jsonguard counted `values` values in it): all it will ever need."""
        need = replycost.decoding(raw, values)
        self._started().limit(need)
        await self._hold(need)

    def _started(self) -> Lease:
        if self._lease is None:
            raise RuntimeError("ReplyMemory.start was not called")
        return self._lease

    async def _hold(self, total: int) -> None:
        lease = self._started()
        try:
            async with asyncio.timeout_at(self._deadline):
                await lease.grow_to(total)
        except TimeoutError:
            what = f"no room in the {self._budget.limit}-byte reply memory budget within the request timeout"
            raise ZStackError.client(TIMEOUT, what, operation=self._operation) from None
