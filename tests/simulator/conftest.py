"""Simulator tests: black-box over real loopback HTTP with a plain aiohttp session (not our ZStack client).

`make_sim(**config)` starts a simulator with small latencies so the suite stays fast; `zs` is a raw HTTP
helper (rawhttp.ZS) bound to the default simulator and already logged in as admin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from vmclock.simulator import Simulator, SimulatorConfig

from .rawhttp import ZS

MakeSim = Callable[..., Awaitable[Simulator]]
ZSFor = Callable[[Simulator], ZS]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def make_sim() -> AsyncIterator[MakeSim]:
    started: list[Simulator] = []

    async def make(**overrides: Any) -> Simulator:
        sim = Simulator(SimulatorConfig(**{"vms": 20, "job_latency": 0.02, **overrides}))
        await sim.start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        await sim.stop()


@pytest.fixture
async def sim(make_sim: MakeSim) -> Simulator:
    return await make_sim()


@pytest.fixture
async def zs(http: aiohttp.ClientSession, sim: Simulator) -> ZS:
    client = ZS(http, sim)
    assert (await client.login()).status == 200
    return client


@pytest.fixture
def zs_for(http: aiohttp.ClientSession) -> ZSFor:
    return lambda sim: ZS(http, sim)
