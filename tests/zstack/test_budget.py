"""The process-wide reply memory budget (design §6.6): waits instead of overruns, never deadlocks, and always
leaves room for small replies."""

from __future__ import annotations

import asyncio
import random
from contextlib import ExitStack

import pytest

from vmclock.simulator import Simulator
from vmclock.zstack import ZStackError
from vmclock.zstack.budget import Lease, ReplyBudget
from vmclock.zstack.errors import TIMEOUT

from .support import MakeClient

LIMIT = 800  # large leases may use 700; small leases are those claiming at most 25


async def holding(budget: ReplyBudget, claim: int, total: int) -> tuple[Lease, ExitStack]:
    """A lease outside a with-block that holds `total`, ended by closing the returned stack."""
    stack = ExitStack()
    lease = stack.enter_context(budget.lease(claim))
    await asyncio.wait_for(lease.grow_to(total), 1)
    return lease, stack


async def waiting(
    budget: ReplyBudget, claim: int, total: int
) -> tuple[Lease, ExitStack, asyncio.Future[None]]:
    """A lease growing to `total` in the background, given a few loop turns; the grow must still wait."""
    stack = ExitStack()
    lease = stack.enter_context(budget.lease(claim))
    grow = asyncio.ensure_future(lease.grow_to(total))
    for _ in range(3):
        await asyncio.sleep(0)
    assert not grow.done()
    return lease, stack, grow


async def test_a_grow_that_does_not_fit_waits_until_memory_comes_back() -> None:
    budget = ReplyBudget(LIMIT)
    _, first_ends = await holding(budget, 600, 600)
    second, second_ends, grow = await waiting(budget, 300, 200)
    assert budget.held == 600
    first_ends.close()
    await asyncio.wait_for(grow, 1)
    assert (budget.held, second.held) == (200, 200)
    second_ends.close()
    assert budget.held == 0


async def test_small_replies_pass_while_large_ones_wait() -> None:
    budget = ReplyBudget(LIMIT)
    _, large_ends = await holding(budget, 700, 700)
    # The last eighth is kept for small leases: the 100 more this one asks for would have fitted.
    _, other_ends, other_grow = await waiting(budget, 200, 100)
    small, small_ends = await holding(budget, 20, 5)
    assert small.held == 20  # a small lease takes its whole claim at once
    assert not other_grow.done()
    assert budget.held == 720
    for ends in (small_ends, large_ends):
        ends.close()
    await asyncio.wait_for(other_grow, 1)
    other_ends.close()


async def test_leases_growing_together_never_deadlock() -> None:
    """Each lease holds what it has while it waits for more: granted without the banker's check, a dozen
    of them fill the budget in small steps and then all wait for each other forever."""
    budget = ReplyBudget(1000)
    rng = random.Random(7)
    most_held = 0

    async def reply(claim: int) -> None:
        nonlocal most_held
        with budget.lease(claim) as lease:
            for total in range(50, claim + 1, 50):
                await lease.grow_to(total)
                most_held = max(most_held, budget.held)
                await asyncio.sleep(0)

    claims = [rng.randrange(300, 850, 50) for _ in range(12)]
    await asyncio.wait_for(asyncio.gather(*(reply(claim) for claim in claims)), 5)
    assert most_held <= budget.largest_claim
    assert budget.held == 0


async def test_lowering_a_claim_lets_waiting_leases_in() -> None:
    budget = ReplyBudget(1000)  # large leases may use 875
    first, first_ends = await holding(budget, 800, 100)
    # Granted, both would need 700 more with 675 left: neither could ever finish.
    _, second_ends, grow = await waiting(budget, 800, 100)
    first.limit(100)  # the first reply turned out small: it needs nothing more
    await asyncio.wait_for(grow, 1)
    for ends in (first_ends, second_ends):
        ends.close()
    assert budget.held == 0


async def test_a_wait_cut_by_its_timeout_leaves_nothing_behind() -> None:
    budget = ReplyBudget(LIMIT)
    _, first_ends = await holding(budget, 700, 700)
    with budget.lease(300) as second, pytest.raises(TimeoutError):
        await asyncio.wait_for(second.grow_to(200), 0.05)
    assert budget.held == 700
    first_ends.close()
    with budget.lease(700) as third:
        await asyncio.wait_for(third.grow_to(700), 1)
    assert budget.held == 0


def test_a_claim_the_budget_could_never_grant_is_refused() -> None:
    budget = ReplyBudget(LIMIT)
    with pytest.raises(ValueError, match="cannot fit the 800-byte budget"), budget.lease(701):
        pass


async def test_requests_give_their_memory_back_and_time_out_waiting_for_it(
    sim: Simulator, make_client: MakeClient
) -> None:
    budget = ReplyBudget(16 * 1024 * 1024)  # large leases may use 14 MiB, small ones claim up to 512 KiB
    client = make_client(
        sim.endpoint, reply_budget=budget, max_reply_bytes=64 * 1024, request_timeout=0.5, retry_attempts=1
    )
    await client.get_version()
    assert budget.held == 0
    with ExitStack() as full:
        large = full.enter_context(budget.lease(budget.largest_claim))
        await large.grow_to(budget.largest_claim)
        # Large replies have all they may take: a reply declaring a small length still gets through.
        assert await client.get_version() == client.version
        for _ in range(budget.reserve // budget.small):
            await full.enter_context(budget.lease(budget.small)).grow_to(budget.small)
        assert budget.held == budget.limit
        with pytest.raises(ZStackError) as failed:
            await client.get_version()
        assert failed.value.code == TIMEOUT
        assert "reply memory budget" in failed.value.description
        assert budget.held == budget.limit
    assert await client.get_version() == client.version
    assert budget.held == 0


def test_a_client_whose_largest_reply_cannot_fit_the_budget_is_refused(make_client: MakeClient) -> None:
    with pytest.raises(ValueError, match="max_reply_bytes"):
        make_client("http://127.0.0.1:1", reply_budget=ReplyBudget(64 * 1024 * 1024))
