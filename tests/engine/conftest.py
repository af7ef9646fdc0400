"""Engine tests that need ZStack use the real client against the in-process simulator over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from vmclock.simulator import Simulator, SimulatorConfig
from vmclock.zstack import ZStackClient
from zstack.support import ADMIN, FAST


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(SimulatorConfig(vms=40, job_latency=0.02, seed=7)) as running:
        yield running


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[ZStackClient]:
    async with ZStackClient(sim.endpoint, ADMIN, FAST) as made:
        yield made
