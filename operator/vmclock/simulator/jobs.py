"""Async API jobs: the AsyncRestVO store behind `/v1/api-jobs/{uuid}`, and per-resource chain queues.

A job is stored *before* its message runs (so a client whose 202 got lost can still find it by its own
X-Job-UUID), and a completed job is kept `retention` seconds (rest.completedApi.expiredPeriod, 3 h by
default) before polls answer 404. ZStack purges in an hourly scan; the simulator purges exactly on time,
which keeps tests with short retention deterministic.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from vmclock.simulator.errors import ApiError
from vmclock.simulator.model import Reply


@dataclass
class Job:
    """An AsyncRestVO: processing while `outcome` is None."""

    uuid: str
    completed: float | None = None
    outcome: Reply | ApiError | None = None


class JobStore:
    def __init__(self, retention: float) -> None:
        self.retention = retention
        self._jobs: dict[str, Job] = {}
        # Completed jobs in completion order: purging pops expired ones from the left instead of scanning
        # every stored job on every poll (a benchmark keeps thousands for the 3 h retention).
        self._completed: deque[Job] = deque()

    def _purge(self) -> None:
        horizon = time.monotonic() - self.retention
        while self._completed and (self._completed[0].completed or 0.0) <= horizon:
            job = self._completed.popleft()
            if self._jobs.get(job.uuid) is job:  # a reused uuid may have replaced it already
                del self._jobs[job.uuid]

    def get(self, uuid: str) -> Job | None:
        self._purge()
        return self._jobs.get(uuid)

    def create(self, uuid: str) -> Job:
        """Store a processing job; a reused uuid (accepted before 4.6.0) replaces the old record."""
        self._purge()
        job = Job(uuid)
        self._jobs[uuid] = job
        return job

    def complete(self, job: Job, outcome: Reply | ApiError) -> None:
        job.outcome, job.completed = outcome, time.monotonic()
        self._completed.append(job)


class ChainQueues:
    """ZStack's chain tasks: jobs with the same signature (e.g. `set-vm-clock-track-<uuid>`) run one at a
    time, in arrival order (asyncio.Lock wakes waiters FIFO)."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def chain(self, signature: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(signature, asyncio.Lock())
        self._users[signature] = self._users.get(signature, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[signature] -= 1
            if not self._users[signature]:  # forget idle chains so a big fleet does not pile up locks
                del self._users[signature], self._locks[signature]
