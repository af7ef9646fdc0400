"""A connection's shared observer reads a VM again only for a request its last reading cannot answer.

After a restart the start-up round's batch reads every settled policy's VMs; reconciles that ask while it
is reading join the batch after it. That batch used to read those VMs a second time although the first
one's readings, taken after each of those requests, answer them (test_e2e_restart saw 12 reads for one
round of 10 under load).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from vmclock.engine.external import SharedObserver
from vmclock.zstack.models import Track, VmInventory

VMS = ["a" * 32, "b" * 32]


class SlowFleet:
    """A management node whose VM query takes `delay`; it records the VMs of every query."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.queries: list[list[str]] = []

    async def get_vm_inventories(self, uuids: Sequence[str]) -> dict[str, VmInventory]:
        self.queries.append(list(uuids))
        await asyncio.sleep(self.delay)
        return {uuid: VmInventory(uuid=uuid, state="Running") for uuid in uuids}

    async def get_clock_tracks(self, uuids: Sequence[str], *, existing: Any = None) -> dict[str, Track]:
        return dict.fromkeys(uuids, "host")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_request_made_before_the_batch_in_flight_took_its_reading_is_answered_by_it() -> None:
    clock, fleet = Clock(), SlowFleet(delay=0.2)
    observer = SharedObserver(clock=clock, window=0.0)
    first = asyncio.create_task(observer.read(fleet, VMS, since=99.0))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)  # the batch is reading (taken at 100)
    late = await observer.read(fleet, VMS[:1], since=99.5)  # type: ignore[arg-type]
    await first
    assert late[VMS[0]].track == "host"
    assert fleet.queries == [VMS], "the VMs were read again although the reading in flight answered"


async def test_a_request_made_after_the_batch_in_flight_took_its_reading_gets_a_new_one() -> None:
    clock, fleet = Clock(), SlowFleet(delay=0.2)
    observer = SharedObserver(clock=clock, window=0.0)
    first = asyncio.create_task(observer.read(fleet, VMS, since=99.0))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    clock.now = 101.0  # a request made after the reading in flight was taken
    await observer.read(fleet, VMS[:1], since=100.5)  # type: ignore[arg-type]
    await first
    assert fleet.queries == [VMS, VMS[:1]]


async def test_a_hint_made_after_a_reading_is_read_again() -> None:
    clock, fleet = Clock(), SlowFleet(delay=0.0)
    observer = SharedObserver(clock=clock, window=0.0)
    await observer.read(fleet, VMS, since=99.0)  # type: ignore[arg-type]
    clock.now = 110.0
    observer.hint(VMS[1:])  # a resync round announces the VM: its reconcile will ask from now on
    await observer.read(fleet, VMS[:1], since=110.0)  # type: ignore[arg-type]
    assert fleet.queries == [VMS, VMS], "the hinted VM joined the next batch"
