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


async def test_forgetting_a_gone_key_drops_its_wake_ups_but_never_a_request_made_meanwhile() -> None:
    """controller-runtime's Forget: a key whose object is gone loses its timers and backoff; an `add` that
    arrived while it was processed (the create of a namesake) still runs it again (design.md §5.9)."""
    queue: WorkQueue[str] = WorkQueue()
    queue.add("p")
    assert await queue.get() == "p"
    queue.add_after("p", 0.01)
    queue.add("p")  # the namesake's create handler, while the worker reads "p" as gone
    queue.forget("p", gone=True)
    queue.done("p")
    assert await asyncio.wait_for(queue.get(), 1) == "p", "the request made meanwhile is not lost"
    queue.forget("p", gone=True)
    queue.done("p")
    await asyncio.sleep(0.05)
    assert "p" not in queue, "its delayed wake-up went with it"


async def test_a_flow_holds_at_most_its_share_of_the_workers() -> None:
    """design.md §5.11: one connection's queued keys never take the workers another connection needs."""
    queue: WorkQueue[str] = WorkQueue(workers=4, flow_cap=4, flow_of=lambda key: key[0])
    for i in range(8):
        queue.add(f"s{i}")  # flow "s": a slow management node with 8 policies
    taken = [await asyncio.wait_for(queue.get(), 1) for _ in range(4)]
    assert taken == ["s0", "s1", "s2", "s3"], "alone, a flow may use every worker"
    queue.done("s0")
    queue.add("f0")  # flow "f": another tenant's policy arrives while "s" is busy
    assert await asyncio.wait_for(queue.get(), 1) == "f0", "the new flow goes first: s holds its share"
    queue.done("s1")
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0.01)
    assert not getter.done(), "two busy flows: s may hold 4 // 2 = 2 workers, and holds 2 already"
    queue.done("s2")
    assert await asyncio.wait_for(getter, 1) == "s4"


async def test_flows_take_turns() -> None:
    queue: WorkQueue[str] = WorkQueue(workers=1, flow_of=lambda key: key[0])
    for key in ("a1", "a2", "a3", "b1", "b2", "c1"):
        queue.add(key)
    order = []
    for _ in range(6):
        key = await asyncio.wait_for(queue.get(), 1)
        order.append(key)
        queue.done(key)
    assert order == ["a1", "b1", "c1", "a2", "b2", "a3"]


async def test_shut_down_wakes_workers() -> None:
    queue: WorkQueue[str] = WorkQueue()
    waiter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.shut_down()
    with pytest.raises(ShutDown):
        await asyncio.wait_for(waiter, 1)


async def test_a_paused_queue_keeps_requests_and_hands_out_nothing() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.pause()
    queue.add("k")
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0.05)
    assert not getter.done()
    queue.resume()
    assert await asyncio.wait_for(getter, 1) == "k"


async def test_since_dates_a_request_back_but_never_relaxes_a_later_one() -> None:
    now = [100.0]
    queue: WorkQueue[str] = WorkQueue(clock=lambda: now[0])
    queue.add("a", since=40.0)  # a resumed policy: about the world since the operator started
    assert queue.requested_at("a") == 40.0
    now[0] = 120.0
    queue.add("a")  # a spec change: only an observation after it answers
    assert queue.requested_at("a") == 120.0
    queue.add("a", since=40.0)
    assert queue.requested_at("a") == 120.0, "an older `since` relaxed a newer request"


async def test_promote_moves_queued_keys_to_the_front_of_their_own_flow_only() -> None:
    queue: WorkQueue[str] = WorkQueue(flow_of=lambda key: key[0])  # flows "a" and "b"
    for key in ("a1", "b1", "a2", "a3", "b2"):
        queue.add(key)
    running = await queue.get()  # "a1": being processed, not queued
    queue.promote(["a3", "b2", "a1", "zz"])
    assert [await queue.get() for _ in range(4)] == ["b2", "a3", "b1", "a2"]
    assert running == "a1"
