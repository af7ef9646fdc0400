from __future__ import annotations

import random

from vmclock.kopfapp.scheduler import RETRY_BASE_SECONDS, ResyncScheduler

from .test_liveness import FakeClock

KEY = ("ns", "p")
CONN = ("ns", "default")


def test_first_sight_is_spread_over_the_interval_then_follows_it() -> None:
    clock = FakeClock()
    scheduler = ResyncScheduler(clock, random.Random(1))
    assert not scheduler.is_due(KEY, 100)
    clock.now += 100
    assert scheduler.is_due(KEY, 100)
    scheduler.record(KEY, 100, retry_soon=False)
    clock.now += 99
    assert not scheduler.is_due(KEY, 100)
    clock.now += 1
    assert scheduler.is_due(KEY, 100)


def test_retryable_trouble_backs_off_up_to_the_interval_and_resets() -> None:
    clock = FakeClock()
    scheduler = ResyncScheduler(clock)
    delays = []
    for _ in range(6):
        start = clock.now
        scheduler.record(KEY, 60, retry_soon=True)
        while not scheduler.is_due(KEY, 60):
            clock.now += 1
        delays.append(clock.now - start)
    assert delays == [RETRY_BASE_SECONDS, 10, 20, 40, 60, 60]
    scheduler.record(KEY, 60, retry_soon=False)
    scheduler.record(KEY, 60, retry_soon=True)
    start = clock.now
    while not scheduler.is_due(KEY, 60):
        clock.now += 1
    assert clock.now - start == RETRY_BASE_SECONDS


def test_a_kick_makes_the_policy_due_and_wakes_its_connection() -> None:
    clock = FakeClock()
    scheduler = ResyncScheduler(clock)
    scheduler.record(KEY, 300, retry_soon=False)
    wake = scheduler.wakeup(CONN)
    assert not wake.is_set()
    scheduler.kick(KEY, CONN)
    assert wake.is_set()
    assert scheduler.is_due(KEY, 300)
