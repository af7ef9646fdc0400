"""The `/_sim` admin routes: what a test driving a simulator in another process can see and change."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import MakeSim, ZSFor
from .rawhttp import ZS


async def admin(zs: ZS, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    resp = await zs.call(method, f"{zs.sim.endpoint}/_sim{path}", json=body)
    assert resp.headers["Content-Type"].startswith("application/json")
    return resp.status, resp.json()


async def test_vms_lists_the_fleet_with_tracks(zs: ZS) -> None:
    status, vms = await admin(zs, "GET", "/vms")
    assert status == 200
    assert [vm["uuid"] for vm in vms] == zs.sim.state.vm_uuids()
    keys = (
        "clusterUuid",
        "domainTrack",
        "lastOpDate",
        "name",
        "platform",
        "state",
        "track",
        "userTags",
        "uuid",
        "zoneUuid",
    )
    assert {tuple(sorted(vm)) for vm in vms} == {keys}
    assert {vm["track"] for vm in vms} == {"guest", "host"}


async def test_change_track_and_state_behind_the_operators_back(zs: ZS) -> None:
    uuid = zs.sim.state.vm_uuids()[0]
    status, vm = await admin(zs, "POST", f"/vms/{uuid}/track", {"track": "guest"})
    assert (status, vm["track"], zs.sim.state.track_of(uuid)) == (200, "guest", "guest")
    status, vm = await admin(zs, "POST", f"/vms/{uuid}/state", {"state": "Stopped"})
    assert (status, vm["state"]) == (200, "Stopped")
    assert (await zs.get(f"/v1/vm-instances/{uuid}")).json()["inventories"][0]["state"] == "Stopped"


async def test_admin_refuses_unknown_vms_and_bad_values(zs: ZS) -> None:
    uuid = zs.sim.state.vm_uuids()[0]
    assert (await admin(zs, "POST", "/vms/nope/track", {"track": "guest"}))[0] == 404
    assert (await admin(zs, "POST", f"/vms/{uuid}/track", {"track": "wall"}))[0] == 400
    assert (await admin(zs, "POST", f"/vms/{uuid}/state", {"state": "Asleep"}))[0] == 400
    assert (await admin(zs, "POST", f"/vms/{uuid}/track", ["guest"]))[0] == 400


async def test_global_config(make_sim: MakeSim, zs_for: ZSFor) -> None:
    zs = zs_for(await make_sim())
    assert await admin(zs, "POST", "/global-config", {"track": "guest"}) == (200, {"track": "guest"})
    inheriting = next(u for u in zs.sim.state.vm_uuids() if u not in zs.sim.state.resource_configs.rows)
    assert zs.sim.state.track_of(inheriting) == "guest"
    old = zs_for(await make_sim(zstack_version="4.2.0"))
    assert (await admin(old, "POST", "/global-config", {"track": "guest"}))[0] == 400


async def test_stats_and_reset(zs: ZS) -> None:
    uuid = zs.sim.state.vm_uuids()[0]
    await zs.wait_job(await zs.set_track(uuid, "guest"))
    status, stats = await admin(zs, "GET", "/stats")
    assert status == 200
    assert stats["calls"]["SetVmClockTrack"] == 1
    assert [(w["uuid"], w["track"]) for w in stats["writes"]] == [(uuid, "guest")]
    assert stats["maxInFlight"] >= 1
    _, after = await admin(zs, "POST", "/stats/reset")
    assert (after["calls"], after["writes"]) == ({}, [])


async def test_put_faults_replaces_everything(zs: ZS) -> None:
    body = {
        "latency": 0.01,
        "errorRates": {"SetVmClockTrack": {"rate": 1.0, "code": "SYS.1012"}},
        "dropRate": 0,
        "html502Rate": 0,
        "lostAcceptRate": 0,
        "ready": True,
        "rebootFailures": {},
    }
    status, faults = await admin(zs, "PUT", "/faults", body)
    assert (status, faults) == (200, body)
    assert (
        await zs.wait_job(await zs.set_track(zs.sim.state.vm_uuids()[0], "guest"))
    ).error_code == "SYS.1012"
    _, faults = await admin(zs, "PUT", "/faults", {"ready": False})
    assert (faults["errorRates"], faults["latency"], faults["ready"]) == ({}, 0.0, False)
    assert (await zs.get("/v1/vm-instances")).error_code == "SYS.1010"
    _, faults = await admin(zs, "DELETE", "/faults")
    assert faults["ready"] is True
    assert (await zs.get("/v1/vm-instances")).status == 200


@pytest.mark.parametrize(
    "body",
    [
        {"dropRate": 2},
        {"latency": -1},
        {"ready": "yes"},
        {"errorRates": {"PollJob": {"rate": 1}}},
        {"errorRates": {"SetVmClockTrack": 0.5}},
    ],
)
async def test_bad_faults_are_refused_and_change_nothing(zs: ZS, body: dict[str, Any]) -> None:
    zs.sim.faults.latency = 0.01
    status, error = await admin(zs, "PUT", "/faults", body)
    assert status == 400
    assert error["error"]
    assert zs.sim.faults.latency == 0.01


async def test_expire_sessions(zs: ZS) -> None:
    assert await admin(zs, "POST", "/sessions/expire") == (200, {})
    assert (await zs.get("/v1/vm-instances")).error_code == "ID.1001"
