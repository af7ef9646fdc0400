"""The async job protocol: 202 + location, polling, job headers, retention, per-VM serialization."""

from __future__ import annotations

import asyncio
import itertools
import re
import uuid as uuidlib

import pytest

from .conftest import MakeSim, ZSFor
from .rawhttp import ZS

JOB_LOCATION = re.compile(r"http://mn\.internal:8080/zstack/v1/api-jobs/[0-9a-f]{32}")


async def test_job_lifecycle_202_then_202_empty_then_200_inventory(make_sim: MakeSim, zs_for: ZSFor) -> None:
    zs = zs_for(await make_sim(job_latency=0.3))
    await zs.login()
    uuid = zs.sim.state.vm_uuids()[3]
    accepted = await zs.set_track(uuid, "guest")
    assert accepted.status == 202
    assert JOB_LOCATION.fullmatch(accepted.json()["location"])
    assert accepted.json()["apiTimeout"] == 1_800_000
    running = await zs.call("GET", zs.job_url(accepted))  # no Authorization: polls are not authenticated
    assert (running.status, running.json()) == (202, {})
    done = await zs.wait_job(accepted)
    assert done.status == 200
    inventory = done.json()["inventory"]
    assert inventory["uuid"] == uuid
    assert {"vmNics", "allVolumes", "platform", "state", "lastOpDate"} <= inventory.keys()
    assert not any("track" in key.lower() or "clock" in key.lower() for key in inventory)
    assert "schema" not in done.json()
    assert [(w.uuid, w.track) for w in zs.sim.stats.writes] == [(uuid, "guest")]


async def test_x_json_schema_adds_the_schema_map_to_job_results(zs: ZS) -> None:
    accepted = await zs.set_track(zs.sim.state.vm_uuids()[0], "host")
    done = await zs.wait_job(accepted, headers={"X-JSON-Schema": "true"})
    schema = done.json()["schema"]
    assert schema["inventory"] == "org.zstack.header.vm.VmInstanceInventory"
    assert schema["inventory.vmNics[0]"] == "org.zstack.header.vm.VmNicInventory"
    assert schema["inventory.allVolumes[0]"] == "org.zstack.header.volume.VolumeInventory"


async def test_location_can_use_the_request_host(make_sim: MakeSim, zs_for: ZSFor) -> None:
    zs = zs_for(await make_sim(advertised_url=None))
    await zs.login()
    accepted = await zs.set_track(zs.sim.state.vm_uuids()[0], "guest")
    location = accepted.json()["location"]
    assert location.startswith(zs.sim.endpoint + "/zstack/v1/api-jobs/")
    assert (await zs.call("GET", location)).status in (200, 202)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_job_poll_with_another_method_is_405(zs: ZS, method: str) -> None:
    accepted = await zs.set_track(zs.sim.state.vm_uuids()[0], "guest")
    resp = await zs.call(method, zs.job_url(accepted))
    assert (resp.status, resp.text) == (405, "only GET method is allowed for querying job status")


async def test_unknown_job_is_404_expired(zs: ZS) -> None:
    resp = await zs.call("GET", f"/v1/api-jobs/{uuidlib.uuid4().hex}")
    assert (resp.status, resp.text) == (404, "the job has been expired")


async def test_completed_jobs_are_purged_after_retention(make_sim: MakeSim, zs_for: ZSFor) -> None:
    zs = zs_for(await make_sim(job_retention=0.3))
    await zs.login()
    accepted = await zs.set_track(zs.sim.state.vm_uuids()[0], "guest")
    assert (await zs.wait_job(accepted)).status == 200
    assert (await zs.call("GET", zs.job_url(accepted))).status == 200  # still within retention
    await asyncio.sleep(0.4)
    assert (await zs.call("GET", zs.job_url(accepted))).status == 404


@pytest.mark.parametrize("job_uuid", ["abc", "0" * 31, "0" * 33, "f81d4fae-7dec-11d0-a765-00a0c91e6bf6"])
async def test_x_job_uuid_must_be_32_chars(zs: ZS, job_uuid: str) -> None:
    resp = await zs.set_track(zs.sim.state.vm_uuids()[0], "guest", headers={"X-Job-UUID": job_uuid})
    assert (resp.status, resp.text) == (
        400,
        "Invalid header[X-Job-UUID], it must be a UUID with '-' stripped",
    )


async def test_x_job_uuid_becomes_the_job_uuid(zs: ZS) -> None:
    job_uuid = uuidlib.uuid4().hex
    accepted = await zs.set_track(zs.sim.state.vm_uuids()[0], "guest", headers={"X-Job-UUID": job_uuid})
    assert accepted.json()["location"].endswith(f"/api-jobs/{job_uuid}")
    assert (await zs.call("GET", f"/v1/api-jobs/{job_uuid}")).status in (200, 202)


async def test_duplicate_job_uuid_is_refused_from_4_6(zs: ZS) -> None:
    job_uuid = uuidlib.uuid4().hex
    uuid = zs.sim.state.vm_uuids()[0]
    first = await zs.set_track(uuid, "guest", headers={"X-Job-UUID": job_uuid})
    await zs.wait_job(first)
    again = await zs.set_track(uuid, "host", headers={"X-Job-UUID": job_uuid})
    assert (again.status, again.text) == (400, f"Duplicate job uuid[{job_uuid}]")
    assert zs.sim.state.track_of(uuid) == "guest"


async def test_duplicate_job_uuid_is_accepted_before_4_6(make_sim: MakeSim, zs_for: ZSFor) -> None:
    zs = zs_for(await make_sim(zstack_version="4.4.24"))
    await zs.login()
    job_uuid = uuidlib.uuid4().hex
    uuid = zs.sim.state.vm_uuids()[0]
    await zs.wait_job(await zs.set_track(uuid, "guest", headers={"X-Job-UUID": job_uuid}))
    again = await zs.set_track(uuid, "host", headers={"X-Job-UUID": job_uuid})
    assert (await zs.wait_job(again)).status == 200
    assert zs.sim.state.track_of(uuid) == "host"


async def test_job_uuid_is_reusable_once_purged(make_sim: MakeSim, zs_for: ZSFor) -> None:
    zs = zs_for(await make_sim(job_retention=0.1))
    await zs.login()
    job_uuid = uuidlib.uuid4().hex
    uuid = zs.sim.state.vm_uuids()[0]
    await zs.wait_job(await zs.set_track(uuid, "guest", headers={"X-Job-UUID": job_uuid}))
    await asyncio.sleep(0.2)
    assert (await zs.set_track(uuid, "host", headers={"X-Job-UUID": job_uuid})).status == 202


async def test_x_api_timeout(zs: ZS) -> None:
    uuid = zs.sim.state.vm_uuids()[0]
    custom = await zs.set_track(uuid, "guest", headers={"X-API-Timeout": "120"})
    assert custom.json()["apiTimeout"] == 120_000
    await zs.wait_job(custom)
    empty = await zs.set_track(uuid, "host", headers={"X-API-Timeout": ""})
    assert empty.status == 400
    bad = await zs.set_track(uuid, "host", headers={"X-API-Timeout": "soon"})
    assert (bad.status, bad.text) == (500, 'For input string: "soon"')
    expired = await zs.set_track(uuid, "host", headers={"X-API-Timeout": "0"})
    assert (await zs.wait_job(expired)).error_code == "SYS.1001"
    assert zs.sim.state.track_of(uuid) == "guest"


async def test_jobs_for_one_vm_run_one_at_a_time_in_order(make_sim: MakeSim, zs_for: ZSFor) -> None:
    latency = 0.15
    zs = zs_for(await make_sim(job_latency=latency))
    await zs.login()
    vm, other = zs.sim.state.vm_uuids()[:2]
    same_vm = [await zs.set_track(vm, track) for track in ("guest", "host", "guest")]
    other_vm = await zs.set_track(other, "guest")
    await asyncio.gather(*(zs.wait_job(a) for a in [*same_vm, other_vm]))
    writes = zs.sim.stats.writes
    mine = [w for w in writes if w.uuid == vm]
    assert [w.track for w in mine] == ["guest", "host", "guest"]
    gaps = [b.at - a.at for a, b in itertools.pairwise(mine)]
    assert min(gaps) >= latency * 0.9
    theirs = next(w for w in writes if w.uuid == other)
    assert theirs.at < mine[1].at  # another VM's chain does not wait behind this one
