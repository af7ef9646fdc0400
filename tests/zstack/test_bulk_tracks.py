"""Bulk clock-track reads for large selections: whole listings instead of UUID batches, same answer."""

from __future__ import annotations

import pytest

from vmclock.simulator import Simulator, SimulatorConfig

from .support import MakeClient

READS = ("QueryResourceConfig", "QuerySystemTag", "QueryGlobalConfig")


@pytest.mark.parametrize("version", ["5.3.0", "4.2.0"])
async def test_bulk_tracks_match_batched_reads_with_a_fraction_of_the_requests(
    make_client: MakeClient, version: str
) -> None:
    async with Simulator(SimulatorConfig(vms=3000, zstack_version=version, seed=11)) as sim:
        client = make_client(sim.endpoint)
        uuids = sim.state.vm_uuids()
        for uuid in uuids[:5]:
            sim.state.set_track_behind(uuid, "guest")
        wanted = uuids[:2500]  # rows of VMs outside the set are read and dropped
        batched = await client.get_clock_tracks(wanted, existing=wanted)
        batched_reads = sum(sim.stats.calls[api] for api in READS)
        sim.stats.reset()
        bulk = await client.get_clock_tracks_in_bulk(wanted)
        bulk_reads = sum(sim.stats.calls[api] for api in READS)
        assert bulk == batched == {u: sim.state.track_of(u) for u in wanted}
        assert bulk_reads <= 3, sim.stats.calls
        assert batched_reads >= 10, "UUID batches cost one request per ~230 UUIDs"


async def test_more_rows_than_one_listing_may_hold_falls_back_to_batches(make_client: MakeClient) -> None:
    async with Simulator(SimulatorConfig(vms=300, seed=12)) as sim:
        client = make_client(sim.endpoint, max_listing_rows=20, page_size=50)
        uuids = sim.state.vm_uuids()
        for uuid in uuids:
            sim.state.set_track_behind(uuid, "guest")
        wanted = uuids[:30]
        assert await client.get_clock_tracks_in_bulk(wanted) == dict.fromkeys(wanted, "guest")
        assert await client.get_clock_tracks_in_bulk([]) == {}
