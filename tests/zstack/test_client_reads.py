"""Reads: version, readiness, inventories and clock tracks in both storage modes, batching, pagination."""

from __future__ import annotations

import pytest

from vmclock.simulator import Simulator, SimulatorConfig
from vmclock.zstack import StorageMode, ZStackClient, ZStackError, ZStackVersion, listing
from vmclock.zstack.options import MAX_REQUEST_LINE
from vmclock.zstack.selection import PLATFORMS, Selector

from .recorder import RecordingProxy, Seen
from .support import MakeClient

MISSING = "f" * 32


async def test_version_is_detected_and_cached(sim: Simulator, client: ZStackClient) -> None:
    assert await client.get_version() == ZStackVersion(5, 3, 0)
    assert client.version == ZStackVersion(5, 3, 0)
    await client.get_clock_tracks(sim.state.vm_uuids()[:1])
    assert sim.stats.calls["GetVersion"] == 1


async def test_check_ready_raises_not_ready_without_retrying(sim: Simulator, client: ZStackClient) -> None:
    await client.check_ready()
    sim.faults.ready = False
    with pytest.raises(ZStackError) as caught:
        await client.check_ready()
    assert caught.value.code == "SYS.1010"
    assert caught.value.retryable
    assert sim.stats.calls["IsReadyToGo"] == 2


async def test_inventories_of_existing_vms_only(sim: Simulator, client: ZStackClient) -> None:
    uuids = sim.state.vm_uuids()
    found = await client.get_vm_inventories([*uuids, MISSING])
    assert set(found) == set(uuids)
    assert all(inv.uuid == u and inv.name and inv.state for u, inv in found.items())
    assert await client.get_vm_inventories([]) == {}


@pytest.mark.parametrize(("vms", "pages"), [(50, 8), (49, 7)])
async def test_pagination_stops_at_a_short_page_or_the_total(
    make_client: MakeClient, vms: int, pages: int
) -> None:
    # 50 rows in pages of 7: seven full pages and a short one. 49 rows: the total says stop after seven.
    async with Simulator(SimulatorConfig(vms=vms, seed=3)) as sim:
        client = make_client(sim.endpoint, page_size=7)
        found = await client.get_vm_inventories(sim.state.vm_uuids())
        assert len(found) == vms
        assert sim.stats.calls["QueryVmInstance"] == pages


async def test_2000_uuids_are_batched_under_8_kib_request_lines(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listing, "WHOLE_LISTING_FROM", 10**6)  # batches always (the choice: test_bulk_tracks)
    async with Simulator(SimulatorConfig(vms=2000, seed=5)) as sim, RecordingProxy(sim.endpoint) as proxy:
        client = make_client(proxy.endpoint)
        uuids = sim.state.vm_uuids()
        found = await client.get_vm_inventories(uuids)
        assert len(found) == 2000
        tracks = await client.get_clock_tracks(uuids, existing=found.keys())
        assert tracks == {u: sim.state.track_of(u) for u in uuids}
        lines = [len(s.request_line) + 2 for s in proxy.seen]  # + CRLF
        assert max(lines) <= MAX_REQUEST_LINE
        assert max(lines) > MAX_REQUEST_LINE - 100  # batches are filled, not tiny
        assert sim.stats.calls["QueryVmInstance"] == 9
        assert sim.stats.calls["QueryResourceConfig"] == 9


@pytest.mark.parametrize("value", ["a,b", "x!=y", ""])
async def test_values_zstack_would_misread_are_refused_before_sending(
    sim: Simulator, client: ZStackClient, value: str
) -> None:
    with pytest.raises(ValueError, match="'uuid'"):
        await client.get_vm_inventories([value])
    assert sim.stats.calls["QueryVmInstance"] == 0


@pytest.mark.parametrize(
    ("version", "mode", "queries"),
    [
        (
            "5.3.0",
            StorageMode.RESOURCE_CONFIG,
            {"QueryResourceConfig": 1, "QueryGlobalConfig": 1, "QuerySystemTag": 0},
        ),
        (
            "4.2.0",
            StorageMode.SYSTEM_TAG,
            {"QueryResourceConfig": 0, "QueryGlobalConfig": 0, "QuerySystemTag": 1},
        ),
    ],
)
async def test_tracks_are_read_where_the_version_keeps_them(
    make_client: MakeClient, version: str, mode: StorageMode, queries: dict[str, int]
) -> None:
    async with Simulator(SimulatorConfig(vms=12, zstack_version=version, seed=7)) as sim:
        client = make_client(sim.endpoint)
        uuids = sim.state.vm_uuids()
        await client.set_clock_track(uuids[0], "guest")
        await client.set_clock_track(uuids[1], "host")
        sim.state.set_track_behind(uuids[2], "guest")
        if mode is StorageMode.RESOURCE_CONFIG:
            sim.state.set_global_track(
                "guest"
            )  # VMs without their own row inherit it; uuids[1]'s row stays host
        sim.stats.reset()
        tracks = await client.get_clock_tracks([*uuids, MISSING])
        assert client.version is not None
        assert client.version.storage_mode is mode
        assert tracks == {u: sim.state.track_of(u) for u in uuids}
        assert (tracks[uuids[0]], tracks[uuids[1]], tracks[uuids[2]]) == ("guest", "host", "guest")
        assert {api: sim.stats.calls[api] for api in queries} == queries


async def test_known_existing_vms_skip_the_existence_query(sim: Simulator, client: ZStackClient) -> None:
    uuids = sim.state.vm_uuids()
    inventories = await client.get_vm_inventories(uuids)
    tracks = await client.get_clock_tracks(uuids, existing=inventories.keys())
    assert set(tracks) == set(uuids)
    assert sim.stats.calls["QueryVmInstance"] == 1


async def test_10000_vms_in_one_fields_page_fit_under_the_reply_cap(make_client: MakeClient) -> None:
    sizes: list[int] = []

    def measure(seen: Seen, status: int, body: bytes) -> None:
        if "/vm-instances" in seen.target:
            sizes.append(len(body))

    async with Simulator(SimulatorConfig(vms=10_000, seed=9)) as sim, RecordingProxy(sim.endpoint) as proxy:
        proxy.tamper = measure
        client = make_client(proxy.endpoint, page_size=10_000)
        selected = await client.select_vms(Selector(platforms=PLATFORMS))
        assert len(selected) == 10_000
        found = await client.get_vm_inventories(sim.state.vm_uuids()[:200])
        assert len(found) == 200
        assert all(inv.name and inv.state for inv in found.values())
    assert len(sizes) == 2
    assert max(sizes) <= client.options.max_reply_bytes
    assert sizes[1] < 200 * 1000  # inventories ask for fields= too: no NICs, volumes or CD-ROMs
