"""Changing the fleet at run time through `/_sim`: VMs created "next week", deleted, re-platformed, tagged.

Each change is checked through the ZStack API (the operator's only view), not through the admin routes.
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import MakeSim, ZSFor
from .rawhttp import ZS
from .test_admin import admin

NEW_ZONE = "a" * 32
NEW_CLUSTER = "b" * 32


async def vm_query(zs: ZS, *conditions: str) -> list[str]:
    resp = await zs.get("/v1/vm-instances", params=[*(("q", c) for c in conditions), ("fields", "uuid")])
    assert resp.status == 200, resp.text
    return [vm["uuid"] for vm in resp.json()["inventories"]]


async def test_add_a_vm_next_week(zs: ZS) -> None:
    before = zs.sim.state.vm_uuids()
    body = {
        "name": "win-next-week",
        "platform": "WindowsVirtio",
        "state": "Stopped",
        "zoneUuid": NEW_ZONE,
        "clusterUuid": NEW_CLUSTER,
        "userTags": ["env::prod", "team::z"],
        "track": "guest",
    }
    status, vm = await admin(zs, "POST", "/vms", body)
    assert status == 200
    assert vm["uuid"] not in before
    assert zs.sim.state.vm_uuids() == [*before, vm["uuid"]]  # appended: earlier pages do not shift
    expected = {k: body[k] for k in ("name", "platform", "state", "zoneUuid", "clusterUuid", "userTags")}
    assert {k: vm[k] for k in expected} == expected
    assert vm["track"] == "guest"
    [inventory] = (await zs.get(f"/v1/vm-instances/{vm['uuid']}")).json()["inventories"]
    assert {k: inventory[k] for k in ("name", "platform", "state", "zoneUuid", "clusterUuid")} == {
        k: body[k] for k in ("name", "platform", "state", "zoneUuid", "clusterUuid")
    }
    assert "hostUuid" not in inventory  # stopped
    assert await vm_query(zs, "__userTag__=team::z", f"zoneUuid={NEW_ZONE}") == [vm["uuid"]]
    config = await zs.get(f"/v1/resource-configurations/{vm['uuid']}/vm/vm.clock.track")
    assert config.json()["value"] == "guest"


async def test_added_vms_share_a_new_cluster_and_default_sensibly(zs: ZS) -> None:
    _, first = await admin(
        zs, "POST", "/vms", {"name": "a", "zoneUuid": NEW_ZONE, "clusterUuid": NEW_CLUSTER}
    )
    _, second = await admin(zs, "POST", "/vms", {"name": "b", "clusterUuid": NEW_CLUSTER})
    assert second["zoneUuid"] == NEW_ZONE
    _, plain = await admin(zs, "POST", "/vms", {"name": "c"})
    assert (plain["platform"], plain["state"], plain["userTags"]) == ("Windows", "Running", [])
    seeded_clusters = {vm.fields["clusterUuid"] for vm in zs.sim.state.vms.values()}
    assert plain["clusterUuid"] in seeded_clusters
    assert plain["track"] == zs.sim.state.resource_configs.global_value  # inherits
    assert first["uuid"] != second["uuid"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "x", "platform": "Windows10"},
        {"name": "x", "state": "Asleep"},
        {"name": "x", "track": "wall"},
        {"name": "x", "userTags": "env::prod"},
        {"name": "x", "userTags": [""]},
        {"name": "x", "zoneUuid": "not-a-uuid"},
        {"name": "x", "clusterUuid": NEW_CLUSTER},  # a new cluster needs its zone
        {"name": "x", "platform": 7},
    ],
)
async def test_bad_new_vms_are_refused_and_add_nothing(zs: ZS, body: dict[str, Any]) -> None:
    before = zs.sim.state.vm_uuids()
    status, error = await admin(zs, "POST", "/vms", body)
    assert (status, bool(error["error"])) == (400, True)
    assert zs.sim.state.vm_uuids() == before


async def test_delete_a_vm(zs: ZS) -> None:
    uuid = next(u for u in zs.sim.state.vm_uuids() if u in zs.sim.state.resource_configs.rows)
    assert await admin(zs, "DELETE", f"/vms/{uuid}") == (200, {})
    assert await vm_query(zs, f"uuid={uuid}") == []
    gone = await zs.get(f"/v1/resource-configurations/{uuid}/vm/vm.clock.track")
    assert gone.error_code == "SYS.1003"
    rows = await zs.get("/v1/resource-configurations", params={"q": f"resourceUuid={uuid}"})
    assert rows.json()["inventories"] == []
    tags = await zs.get("/v1/user-tags", params={"q": f"resourceUuid={uuid}"})
    assert tags.json()["inventories"] == []
    assert (await admin(zs, "DELETE", f"/vms/{uuid}"))[0] == 404


async def test_change_platform(zs: ZS) -> None:
    uuid = next(u for u in zs.sim.state.vm_uuids() if zs.sim.state.vm(u).platform == "Linux")
    status, vm = await admin(zs, "POST", f"/vms/{uuid}/platform", {"platform": "Windows"})
    assert (status, vm["platform"]) == (200, "Windows")
    assert uuid in await vm_query(zs, "platform=Windows")
    assert (await admin(zs, "POST", f"/vms/{uuid}/platform", {"platform": "windows"}))[0] == 400


async def test_add_and_remove_user_tags(zs: ZS) -> None:
    uuid = zs.sim.state.vm_uuids()[3]
    status, vm = await admin(zs, "POST", f"/vms/{uuid}/user-tags", {"tag": "owner::ops"})
    assert (status, vm["userTags"][-1]) == (200, "owner::ops")
    assert await vm_query(zs, "__userTag__=owner::ops") == [uuid]
    status, again = await admin(zs, "POST", f"/vms/{uuid}/user-tags", {"tag": "owner::ops"})
    assert again["userTags"].count("owner::ops") == 1  # a VM carries a tag once
    [row] = (await zs.get("/v1/user-tags", params={"q": "tag=owner::ops"})).json()["inventories"]
    assert (row["resourceUuid"], row["resourceType"], row["type"]) == (uuid, "VmInstanceVO", "User")
    status, vm = await admin(zs, "DELETE", f"/vms/{uuid}/user-tags", {"tag": "owner::ops"})
    assert (status, "owner::ops" in vm["userTags"]) == (200, False)
    assert await vm_query(zs, "__userTag__=owner::ops") == []
    assert (await admin(zs, "DELETE", f"/vms/{uuid}/user-tags", {"tag": "owner::ops"}))[0] == 404
    assert (await admin(zs, "POST", f"/vms/{uuid}/user-tags", {"tag": " "}))[0] == 400
    assert (await admin(zs, "POST", "/vms/nope/user-tags", {"tag": "x"}))[0] == 404


async def test_a_vm_deleted_while_its_job_waits_fails_the_job_as_not_found(
    make_sim: MakeSim, zs_for: ZSFor
) -> None:
    zs = zs_for(await make_sim(job_latency=0.3))
    await zs.login()
    uuid = zs.sim.state.vm_uuids()[0]
    accepted = await zs.set_track(uuid, "guest")
    assert (await admin(zs, "DELETE", f"/vms/{uuid}"))[0] == 200
    result = await zs.wait_job(accepted)
    assert result.error_code == "SYS.1003"
    assert zs.sim.state.resource_configs.rows.get(uuid) is None  # no row left for a VM that is gone
