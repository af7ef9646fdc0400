"""What the controller keeps of a reconciled policy (issue 14: peak RSS <= 200 MiB at 1,000 policies x 10
VMs). Measured with tracemalloc over the real controller, client and engine against the simulator (see
fleet.py). Before the cuts a policy kept 41 KiB here (the status kept per runtime, the shared observer's
per-VM inventories with their own copies of shared strings, ClaimsByVm's sets, per-runtime dicts and idle
Events), 17 KiB after; bench/bench_memory.py shows them by line."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import AsyncIterator

import pytest

from vmclock.simulator import Simulator, SimulatorConfig

from . import test_controller
from .fleet import Fleet, operator_bytes, retained
from .test_controller import SECRET_VALUE

no_event_posting = test_controller.no_event_posting

WARM, MEASURED, SIZE = 40, 40, 10  # the warm-up fills the client's bounded caches (URLs of job polls)
BOUND = 24 * 1024  # bytes per 10-VM policy: 17 KiB measured here, 41 KiB before the cuts


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    config = SimulatorConfig(vms=(WARM + MEASURED) * SIZE, accounts={"admin": SECRET_VALUE}, job_latency=0.0)
    async with Simulator(config) as sim:
        made = Fleet(sim, WARM + MEASURED, SIZE)
        made.start()
        yield made
        await made.stop()


async def test_a_reconciled_policy_keeps_a_few_kib_after_its_apply_and_an_in_sync_round(fleet: Fleet) -> None:
    warm = fleet.add(range(WARM))
    fleet.index_new(warm)
    await fleet.apply(warm)
    await fleet.in_sync_round(warm)
    measured = fleet.add(range(WARM, WARM + MEASURED))
    gc.collect()
    tracemalloc.start(16)
    try:
        before = tracemalloc.take_snapshot()
        fleet.index_new(measured)
        await fleet.apply(measured)
        await fleet.in_sync_round(measured)
        fleet.drop_other_sides(measured)
        gc.collect()
        sites = retained(before, tracemalloc.take_snapshot())
    finally:
        tracemalloc.stop()
    per_policy = operator_bytes(sites) / MEASURED
    top = {site: size // MEASURED for site, size in sites.most_common() if not site.startswith("(elsewhere)")}
    most = dict(list(top.items())[:8])
    assert per_policy <= BOUND, f"{per_policy:.0f} bytes kept per policy; the most by line: {most}"
