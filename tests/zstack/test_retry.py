"""Retries: bounded attempts, full-jitter waits from the one Backoff rule, terminal errors raised at once."""

from __future__ import annotations

import random
import statistics
from collections.abc import Awaitable, Callable

import pytest

from vmclock.backoff import Backoff
from vmclock.zstack.errors import HTTP, SYS_INVALID_ARGUMENT, SYS_TIMEOUT, TRANSPORT, ErrorCode, ZStackError
from vmclock.zstack.options import ClientOptions
from vmclock.zstack.retry import RetryPolicy

NO_WAIT = Backoff(base=0.0, cap=0.0)


def test_client_retry_ceiling_doubles_up_to_the_cap() -> None:
    backoff = ClientOptions(retry_base_delay=0.2, retry_max_delay=5.0).retry_backoff()
    assert [backoff.ceiling(n) for n in range(7)] == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0])


def test_delays_are_jittered_over_the_whole_range_below_the_ceiling() -> None:
    policy = RetryPolicy(attempts=5, backoff=Backoff(base=0.2, cap=5.0, rng=random.Random(7)))
    samples = [policy.backoff.delay(3) for _ in range(2000)]
    assert all(0.0 <= s <= 1.6 for s in samples)
    assert min(samples) < 0.1
    assert max(samples) > 1.5
    assert statistics.mean(samples) == pytest.approx(0.8, rel=0.1)  # uniform(0, 1.6)


def failing(codes: list[str], calls: list[int]) -> Callable[[], Awaitable[str]]:
    async def attempt() -> str:
        calls.append(1)
        if len(calls) <= len(codes):
            raise ZStackError(ErrorCode(code=codes[len(calls) - 1]))
        return "done"

    return attempt


async def test_retryable_errors_are_retried_until_success() -> None:
    calls: list[int] = []
    policy = RetryPolicy(attempts=5, backoff=NO_WAIT)
    assert await policy.run(failing([TRANSPORT, SYS_TIMEOUT], calls), operation="op") == "done"
    assert len(calls) == 3


async def test_attempts_are_bounded() -> None:
    calls: list[int] = []
    policy = RetryPolicy(attempts=3, backoff=NO_WAIT)
    with pytest.raises(ZStackError) as caught:
        await policy.run(failing([SYS_TIMEOUT] * 10, calls), operation="op")
    assert caught.value.code == SYS_TIMEOUT
    assert len(calls) == 3


@pytest.mark.parametrize("code", [SYS_INVALID_ARGUMENT, HTTP, "SYS.1003", "ID.1000"])
async def test_terminal_errors_are_not_retried(code: str) -> None:
    calls: list[int] = []
    policy = RetryPolicy(attempts=5, backoff=NO_WAIT)
    with pytest.raises(ZStackError):
        await policy.run(failing([code], calls), operation="op")
    assert len(calls) == 1


async def test_recovery_retries_without_spending_an_attempt() -> None:
    calls: list[int] = []
    policy = RetryPolicy(attempts=2, backoff=NO_WAIT)
    recovered: list[str] = []

    def recover(err: ZStackError) -> bool:
        recovered.append(err.code)
        return err.code == "ID.1001"

    attempt = failing(["ID.1001", TRANSPORT], calls)
    assert await policy.run(attempt, operation="op", recover=recover) == "done"
    assert recovered == ["ID.1001", TRANSPORT]
    assert len(calls) == 3
