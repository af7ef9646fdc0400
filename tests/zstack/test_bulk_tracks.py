"""Bulk clock-track reads for large selections: whole listings instead of UUID batches, same answer."""

from __future__ import annotations

import pytest

from vmclock.simulator import Simulator, SimulatorConfig
from vmclock.zstack import listing

from .support import MakeClient

READS = ("QueryResourceConfig", "QuerySystemTag", "QueryGlobalConfig")


@pytest.mark.parametrize("version", ["5.3.0", "4.2.0"])
async def test_bulk_tracks_match_batched_reads_with_a_fraction_of_the_requests(
    make_client: MakeClient, version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listing, "WHOLE_LISTING_FROM", 10**6)  # the UUID batches themselves, as before
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


async def test_a_long_uuid_list_reads_the_whole_listing_when_its_pages_are_fewer(
    make_client: MakeClient,
) -> None:
    """The union of many small policies' VMs (2,500 UUIDs: 11 batches of ~230) in a 3,000-VM installation:
    a count, then 3 pages of 1,000, instead of 11 batches, for inventories and for tracks alike."""
    async with Simulator(SimulatorConfig(vms=3000, seed=13)) as sim:
        client = make_client(sim.endpoint)
        uuids = sim.state.vm_uuids()
        for uuid in uuids:
            sim.state.set_track_behind(uuid, "guest" if uuid[-1] in "01234567" else "host")
        wanted = uuids[:2500]
        found = await client.get_vm_inventories(wanted)
        tracks = await client.get_clock_tracks(wanted, existing=found.keys())
        assert sorted(found) == sorted(wanted)
        assert tracks == {u: sim.state.track_of(u) for u in wanted}
        assert sim.stats.calls["QueryVmInstance"] == 1 + 3
        assert sim.stats.calls["QueryResourceConfig"] == 1 + 3


async def test_a_long_uuid_list_in_a_larger_listing_stays_in_batches(make_client: MakeClient) -> None:
    """Pages of 250 rows make the whole listing 12 requests: the 11 batches are fewer (after the count)."""
    async with Simulator(SimulatorConfig(vms=3000, seed=14)) as sim:
        client = make_client(sim.endpoint, page_size=250)
        wanted = sim.state.vm_uuids()[:2500]
        found = await client.get_vm_inventories(wanted)
        assert sorted(found) == sorted(wanted)
        assert sim.stats.calls["QueryVmInstance"] == 1 + 11
