"""SetVmClockTrack validation and both storage modes, read back the ways an operator would."""

from __future__ import annotations

import uuid as uuidlib
from typing import Any

import pytest

from .conftest import MakeSim, ZSFor
from .rawhttp import ZS

MESSAGE = "org.zstack.header.vm.APISetVmClockTrackMsg"
INTERVAL = "vm.clock.sync.interval.in.seconds"
AFTER_RESUME = "vm.clock.sync.after.vm.resume"
BAD_SESSION = {"Authorization": "OAuth ffffffffffffffffffffffffffffffff"}


async def logged_in(make_sim: MakeSim, zs_for: ZSFor, **config: object) -> ZS:
    zs = zs_for(await make_sim(**config))
    assert (await zs.login()).status == 200
    return zs


async def test_unknown_vm_is_sys_1003_in_the_job_result(zs: ZS) -> None:
    missing = uuidlib.uuid4().hex
    result = await zs.wait_job(await zs.set_track(missing, "guest"))
    assert result.error_code == "SYS.1003"
    assert result.json()["error"]["details"] == (
        f"invalid field[uuid], resource[uuid:{missing}, type:VmInstanceVO] not found"
    )


async def test_unknown_vm_beats_a_bad_session(zs: ZS) -> None:
    missing = uuidlib.uuid4().hex
    result = await zs.wait_job(await zs.set_track(missing, "guest", headers=BAD_SESSION))
    assert result.error_code == "SYS.1003"
    sync = await zs.call(
        "GET", f"/v1/resource-configurations/{missing}/vm/vm.clock.track", headers=BAD_SESSION
    )
    assert sync.error_code == "SYS.1003"


async def test_bad_session_on_a_known_vm_is_id_1001(zs: ZS) -> None:
    result = await zs.wait_job(await zs.set_track(zs.sim.state.vm_uuids()[0], "guest", headers=BAD_SESSION))
    assert result.error_code == "ID.1001"


@pytest.mark.parametrize(
    ("track", "details"),
    [
        ("Guest", f"valid value for field[track] of message[{MESSAGE}] are [guest, host], but Guest found"),
        ("wall", f"valid value for field[track] of message[{MESSAGE}] are [guest, host], but wall found"),
        (None, f"field[track] of message[{MESSAGE}] is mandatory, can not be null"),
    ],
)
async def test_bad_track_is_sys_1007_after_202(zs: ZS, track: str | None, details: str) -> None:
    uuid = zs.sim.state.vm_uuids()[0]
    before = zs.sim.state.track_of(uuid)
    accepted = await zs.set_track(uuid, track)
    assert accepted.status == 202
    result = await zs.wait_job(accepted)
    assert result.error_code == "SYS.1007"
    assert result.json()["error"]["details"] == details
    assert zs.sim.state.track_of(uuid) == before


async def test_track_value_is_trimmed(zs: ZS) -> None:
    uuid = zs.sim.state.vm_uuids()[0]
    assert (await zs.wait_job(await zs.set_track(uuid, " guest "))).status == 200
    assert zs.sim.state.track_of(uuid) == "guest"


@pytest.mark.parametrize("state", ["Stopped", "Paused", "Destroyed"])
async def test_accepted_in_every_vm_state(zs: ZS, state: str) -> None:
    uuid = zs.sim.state.vm_uuids()[0]
    zs.sim.state.set_vm_state(uuid, state)
    result = await zs.wait_job(await zs.set_track(uuid, "guest"))
    assert (result.status, result.json()["inventory"]["state"]) == (200, state)


async def test_qga_fields_are_validated_from_4_4_24(zs: ZS) -> None:
    uuid = next(u for u in zs.sim.state.vm_uuids() if zs.sim.state.vm(u).state == "Running")
    bad = await zs.wait_job(await zs.set_track(uuid, "guest", intervalInSeconds=61))
    assert bad.error_code == "SYS.1007"
    assert "field[intervalInSeconds]" in bad.json()["error"]["details"]
    good = await zs.wait_job(await zs.set_track(uuid, "guest", intervalInSeconds=600, syncAfterVMResume=True))
    assert good.status == 200


@pytest.mark.parametrize("state", ["Stopped", "Paused"])
async def test_qga_fields_succeed_whatever_the_vm_state(zs: ZS, state: str) -> None:
    """ZStack's QGA step has no state check and skips the host of a VM without one (the Go SDK always
    sends both fields, so every SDK call on a stopped VM takes this path)."""
    uuid = zs.sim.state.vm_uuids()[0]
    zs.sim.state.set_vm_state(uuid, state)
    track = "guest" if zs.sim.state.track_of(uuid) == "host" else "host"
    result = await zs.wait_job(await zs.set_track(uuid, track, intervalInSeconds=0, syncAfterVMResume=False))
    assert (result.status, result.json()["inventory"]["state"]) == (200, state)
    assert zs.sim.state.track_of(uuid) == track


async def vm_config(zs: ZS, uuid: str, name: str) -> Any:
    resp = await zs.get(f"/v1/resource-configurations/{uuid}/vm/{name}")
    assert resp.status == 200, resp.text
    return resp.json()


async def test_qga_fields_are_per_vm_resource_configs(zs: ZS) -> None:
    uuid = zs.sim.state.vm_uuids()[1]
    zs.sim.state.set_vm_state(uuid, "Stopped")
    assert await vm_config(zs, uuid, INTERVAL) == {"value": "0", "effectiveConfigs": []}
    assert await vm_config(zs, uuid, AFTER_RESUME) == {"value": "false", "effectiveConfigs": []}
    assert (await zs.wait_job(await zs.set_track(uuid, "guest", intervalInSeconds=600))).status == 200
    interval = await vm_config(zs, uuid, INTERVAL)
    assert interval["value"] == "600"
    assert [(c["resourceUuid"], c["name"], c["value"]) for c in interval["effectiveConfigs"]] == [
        (uuid, INTERVAL, "600")
    ]
    assert (await vm_config(zs, uuid, AFTER_RESUME))["value"] == "false"  # not sent, not written
    assert (await zs.wait_job(await zs.set_track(uuid, "guest", syncAfterVMResume=True))).status == 200
    assert (await vm_config(zs, uuid, AFTER_RESUME))["value"] == "true"
    rows = await zs.get(
        "/v1/resource-configurations", params=[("q", f"resourceUuid={uuid}"), ("q", "name~=vm.clock.sync.%")]
    )
    assert sorted((r["name"], r["value"]) for r in rows.json()["inventories"]) == [
        (AFTER_RESUME, "true"),
        (INTERVAL, "600"),
    ]
    globals_ = await zs.get("/v1/global-configurations", params={"q": "name~=vm.clock.%"})
    assert {(g["name"], g["defaultValue"]) for g in globals_.json()["inventories"]} == {
        ("vm.clock.track", "host"),
        (INTERVAL, "0"),
        (AFTER_RESUME, "false"),
    }


async def test_qga_configs_take_update_and_delete_with_their_valid_values(zs: ZS) -> None:
    uuid = zs.sim.state.vm_uuids()[2]
    path = f"/v1/resource-configurations/vm/{INTERVAL}/{uuid}"
    bad = await zs.call(
        "PUT", path + "/actions", json={"updateResourceConfig": {"value": "61"}}, headers=zs.auth()
    )
    assert (await zs.wait_job(bad)).error_code == "SYS.1007"
    good = await zs.call(
        "PUT", path + "/actions", json={"updateResourceConfig": {"value": "3600"}}, headers=zs.auth()
    )
    assert (await zs.wait_job(good)).json()["inventory"]["value"] == "3600"
    assert (await zs.wait_job(await zs.call("DELETE", path, headers=zs.auth()))).status == 200
    assert (await vm_config(zs, uuid, INTERVAL))["value"] == "0"


async def test_qga_configs_do_not_exist_before_4_4_24(make_sim: MakeSim, zs_for: ZSFor) -> None:
    zs = await logged_in(make_sim, zs_for, zstack_version="4.4.18")
    resp = await zs.get(f"/v1/resource-configurations/{zs.sim.state.vm_uuids()[0]}/vm/{INTERVAL}")
    assert resp.error_code == "SYS.1007"
    assert (await vm_config(zs, zs.sim.state.vm_uuids()[0], "vm.clock.track"))["value"] in ("guest", "host")


async def test_qga_fields_are_unknown_and_ignored_before_4_4_24(make_sim: MakeSim, zs_for: ZSFor) -> None:
    zs = await logged_in(make_sim, zs_for, zstack_version="4.4.18")
    uuid = zs.sim.state.vm_uuids()[0]
    result = await zs.wait_job(
        await zs.set_track(uuid, "guest", intervalInSeconds=61, syncAfterVMResume="maybe")
    )
    assert result.status == 200
    assert zs.sim.state.track_of(uuid) == "guest"


async def test_set_vm_clock_track_does_not_exist_before_4_1_0(make_sim: MakeSim, zs_for: ZSFor) -> None:
    zs = await logged_in(make_sim, zs_for, zstack_version="4.0.1")
    uuid = zs.sim.state.vm_uuids()[0]
    resp = await zs.set_track(uuid, "guest")
    assert (resp.status, resp.text) == (
        400,
        f"the body doesn't contain action mapping to the URL[/v1/vm-instances/{uuid}/actions]",
    )


# --- >= 4.3.12: resource config vm.clock.track ---------------------------------------------------------


async def resource_config(zs: ZS, uuid: str) -> Any:
    resp = await zs.get(f"/v1/resource-configurations/{uuid}/vm/vm.clock.track")
    assert resp.status == 200, resp.text
    return resp.json()


async def test_resource_config_read_back_after_set(zs: ZS) -> None:
    uuid = zs.sim.state.vm_uuids()[0]
    for track in ("guest", "host"):
        assert (await zs.wait_job(await zs.set_track(uuid, track))).status == 200
        config = await resource_config(zs, uuid)
        assert config["value"] == track
        assert [(c["resourceUuid"], c["value"]) for c in config["effectiveConfigs"]] == [(uuid, track)]


async def test_vm_without_a_row_inherits_the_global_value(zs: ZS) -> None:
    state = zs.sim.state
    inheriting = next(u for u in state.vm_uuids() if u not in state.resource_configs.rows)
    assert await resource_config(zs, inheriting) == {"value": "host", "effectiveConfigs": []}
    state.set_global_track("guest")
    assert (await resource_config(zs, inheriting))["value"] == "guest"
    globals_ = await zs.get(
        "/v1/global-configurations", params=[("q", "category=vm"), ("q", "name=vm.clock.track")]
    )
    [inventory] = globals_.json()["inventories"]
    assert (inventory["value"], inventory["defaultValue"]) == ("guest", "host")


async def test_bulk_query_returns_explicit_rows_only(zs: ZS) -> None:
    state = zs.sim.state
    with_row = [u for u in state.vm_uuids() if u in state.resource_configs.rows][:2]
    without_row = next(u for u in state.vm_uuids() if u not in state.resource_configs.rows)
    wanted = ",".join([*with_row, without_row])
    resp = await zs.get(
        "/v1/resource-configurations", params=[("q", "name=vm.clock.track"), ("q", f"resourceUuid?={wanted}")]
    )
    body = resp.json()
    assert sorted(i["resourceUuid"] for i in body["inventories"]) == sorted(with_row)
    assert body["schema"]["inventories[0]"] == "org.zstack.resourceconfig.ResourceConfigInventory"


async def test_update_and_delete_resource_config_are_async_drift_sources(zs: ZS) -> None:
    uuid = zs.sim.state.vm_uuids()[0]
    path = f"/v1/resource-configurations/vm/vm.clock.track/{uuid}"
    update = await zs.call(
        "PUT", path + "/actions", json={"updateResourceConfig": {"value": "guest"}}, headers=zs.auth()
    )
    updated = await zs.wait_job(update)
    assert (updated.json()["inventory"]["value"], zs.sim.state.track_of(uuid)) == ("guest", "guest")
    deleted = await zs.wait_job(await zs.call("DELETE", path, headers=zs.auth()))
    assert (deleted.status, deleted.json()) == (200, {})
    assert await resource_config(zs, uuid) == {"value": "host", "effectiveConfigs": []}
    bad = await zs.call(
        "PUT", path + "/actions", json={"updateResourceConfig": {"value": "wall"}}, headers=zs.auth()
    )
    assert (await zs.wait_job(bad)).error_code == "SYS.1007"


async def test_get_resource_config_errors(zs: ZS) -> None:
    missing = await zs.get(f"/v1/resource-configurations/{uuidlib.uuid4().hex}/vm/vm.clock.track")
    assert missing.error_code == "SYS.1003"
    unknown = await zs.get(f"/v1/resource-configurations/{zs.sim.state.vm_uuids()[0]}/vm/vm.no.such")
    assert unknown.error_code == "SYS.1007"


async def test_drift_behind_the_operators_back_is_visible(zs: ZS) -> None:
    uuid = zs.sim.state.vm_uuids()[0]
    zs.sim.state.set_track_behind(uuid, "guest")
    assert (await resource_config(zs, uuid))["value"] == "guest"
    zs.sim.state.set_track_behind(uuid, "host")
    assert (await resource_config(zs, uuid))["value"] == "host"


# --- 4.1.0 - 4.3.10: system tag clockTrack::guest ------------------------------------------------------


async def guest_tags(zs: ZS, *uuids: str) -> list[str]:
    resp = await zs.get(
        "/v1/system-tags", params=[("q", f"resourceUuid?={','.join(uuids)}"), ("q", "tag=clockTrack::guest")]
    )
    return [tag["resourceUuid"] for tag in resp.json()["inventories"]]


async def test_system_tag_read_back_after_set(make_sim: MakeSim, zs_for: ZSFor) -> None:
    zs = await logged_in(make_sim, zs_for, zstack_version="4.2.0")
    uuid = next(u for u in zs.sim.state.vm_uuids() if zs.sim.state.track_of(u) == "host")
    assert await guest_tags(zs, uuid) == []
    await zs.wait_job(await zs.set_track(uuid, "guest"))
    assert await guest_tags(zs, uuid) == [uuid]
    by_tag = await zs.get(
        "/v1/vm-instances", params={"q": "__systemTag__=clockTrack::guest", "fields": "uuid"}
    )
    assert {"uuid": uuid} in by_tag.json()["inventories"]
    await zs.wait_job(await zs.set_track(uuid, "host"))
    assert await guest_tags(zs, uuid) == []
    assert zs.sim.state.track_of(uuid) == "host"


async def test_no_resource_config_for_the_track_before_4_3_12(make_sim: MakeSim, zs_for: ZSFor) -> None:
    zs = await logged_in(make_sim, zs_for, zstack_version="4.3.10")
    uuid = zs.sim.state.vm_uuids()[0]
    resp = await zs.get(f"/v1/resource-configurations/{uuid}/vm/vm.clock.track")
    assert resp.error_code == "SYS.1007"
    assert resp.json()["error"]["details"] == "no global config[category:vm, name:vm.clock.track] found"
    rows = await zs.get("/v1/resource-configurations", params={"q": "name=vm.clock.track"})
    assert rows.json()["inventories"] == []
    globals_ = await zs.get("/v1/global-configurations", params={"q": "name=vm.clock.track"})
    assert globals_.json()["inventories"] == []
    with pytest.raises(ValueError, match=r"4\.3\.12"):
        zs.sim.state.set_global_track("guest")
