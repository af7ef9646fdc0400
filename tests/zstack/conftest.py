"""Client tests run against the real simulator over loopback HTTP; nothing in the client is mocked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from vmclock.simulator import Simulator, SimulatorConfig
from vmclock.zstack import Credentials, ZStackClient

from .support import ADMIN, FAST, CallLog, MakeClient


@pytest.fixture
def call_log() -> CallLog:
    return CallLog()


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(SimulatorConfig(vms=50, job_latency=0.02, seed=1)) as running:
        yield running


@pytest.fixture
async def make_client(call_log: CallLog) -> AsyncIterator[MakeClient]:
    """`make_client(endpoint, credentials=ADMIN, **option_overrides)`; every client is closed afterwards."""
    made: list[ZStackClient] = []

    def make(endpoint: str, credentials: Credentials = ADMIN, **overrides: Any) -> ZStackClient:
        client = ZStackClient(endpoint, credentials, replace(FAST, **overrides), on_call=call_log)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


@pytest.fixture
def client(sim: Simulator, make_client: MakeClient) -> ZStackClient:
    return make_client(sim.endpoint)
