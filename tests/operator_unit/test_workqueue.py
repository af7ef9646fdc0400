"""The work queue's guarantees (controller-runtime semantics), on a real event loop."""

from __future__ import annotations

import asyncio
import random

import pytest

from vmclock.backoff import Backoff, FailureCounter
from vmclock.workqueue import ShutDown, WorkQueue


async def test_add_during_processing_is_not_lost() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    key = await queue.get()
    queue.add("a")  # a request while "a" is processed
    assert queue.pending() == 0, "a key being processed must not be handed out again"
    queue.done(key)
    assert await asyncio.wait_for(queue.get(), 1) == "a"


async def test_requests_coalesce() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for _ in range(5):
        queue.add("a")
    queue.add("b")
    assert [await queue.get(), await queue.get()] == ["a", "b"]
    assert queue.pending() == 0


async def test_one_worker_per_key() -> None:
    queue: WorkQueue[str] = WorkQueue()
    running: set[str] = set()
    overlaps: list[str] = []
    runs = 0

    async def worker() -> None:
        nonlocal runs
        while True:
            try:
                key = await queue.get()
            except ShutDown:
                return
            if key in running:
                overlaps.append(key)
            running.add(key)
            await asyncio.sleep(0.002)
            runs += 1
            if runs < 40:
                queue.add(key)  # keep re-requesting itself while being processed
            running.discard(key)
            queue.done(key)

    workers = [asyncio.create_task(worker()) for _ in range(8)]
    for _ in range(20):
        queue.add("only")
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.3)
    queue.shut_down()
    await asyncio.gather(*workers)
    assert overlaps == []
    assert runs >= 40


async def test_add_after_keeps_earliest_and_add_now_wins() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("a", 5.0)
    queue.add_after("a", 0.01)
    queue.add_after("a", 10.0)  # later than the pending one: ignored
    assert await asyncio.wait_for(queue.get(), 1) == "a"
    queue.done("a")
    queue.add_after("b", 60.0)
    queue.add("b")
    assert await asyncio.wait_for(queue.get(), 1) == "b"
    queue.done("b")
    assert queue.pending() == 0, "an immediate add replaces the delayed one"


async def test_backoff_grows_and_resets() -> None:
    queue: WorkQueue[str] = WorkQueue(Backoff(base=0.01, cap=0.08, floor=0.01, rng=random.Random(1)))
    delays = []
    for _ in range(6):
        delays.append(queue.add_rate_limited("a"))
        assert await asyncio.wait_for(queue.get(), 1) == "a"
        queue.done("a")
    assert queue.failures("a") == 6
    assert max(delays) <= 0.08
    assert delays[-1] > delays[0]
    queue.forget("a")
    assert queue.failures("a") == 0
    assert queue.add_rate_limited("a") <= 0.01


def test_full_jitter_bounds() -> None:
    backoff = Backoff(base=1.0, cap=30.0, rng=random.Random(3))
    assert [backoff.ceiling(n) for n in range(7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff.ceiling(10_000) == 30.0
    samples = [backoff.delay(3) for _ in range(500)]
    assert min(samples) >= 0.0
    assert max(samples) <= 8.0
    assert min(samples) < 1.0, "full jitter reaches down towards 0"
    assert max(samples) > 7.0, "and up towards the ceiling"
    counter = FailureCounter(backoff)
    counter.next_delay("k")
    counter.next_delay("k")
    assert counter.failures("k") == 2
    counter.forget("k")
    assert len(counter) == 0


async def test_discard_drops_pending_work() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("gone")
    queue.add_after("gone", 0.01)
    queue.discard("gone")
    assert "gone" not in queue
    queue.add("next")
    assert await asyncio.wait_for(queue.get(), 1) == "next"


async def test_shut_down_wakes_workers() -> None:
    queue: WorkQueue[str] = WorkQueue()
    waiter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.shut_down()
    with pytest.raises(ShutDown):
        await asyncio.wait_for(waiter, 1)
