"""Fault injection and stats through the Python API: each fault is observable the way a client meets it."""

from __future__ import annotations

import asyncio
import time
import uuid as uuidlib

import aiohttp
import pytest

from .conftest import MakeSim, ZSFor
from .rawhttp import ZS, http_request, raw_exchange


async def test_latency_delays_every_zstack_request(zs: ZS) -> None:
    zs.sim.faults.latency = 0.2
    started = time.monotonic()
    assert (await zs.call("GET", "/v1/management-nodes/ready")).status == 200
    assert time.monotonic() - started >= 0.2


async def test_sync_error_rate_answers_503_with_the_chosen_code(zs: ZS) -> None:
    zs.sim.faults.set_error_rate("QueryVmInstance", 1.0, "SYS.1012")
    assert (await zs.get("/v1/vm-instances")).error_code == "SYS.1012"
    assert (await zs.get("/v1/resource-configurations")).status == 200  # other APIs are unaffected
    zs.sim.faults.set_error_rate("QueryVmInstance", 0.0)
    assert (await zs.get("/v1/vm-instances")).status == 200


async def test_async_error_rate_fails_the_job_after_202(zs: ZS) -> None:
    zs.sim.faults.set_error_rate("SetVmClockTrack", 1.0)
    accepted = await zs.set_track(zs.sim.state.vm_uuids()[0], "guest")
    assert accepted.status == 202
    assert (await zs.wait_job(accepted)).error_code == "SYS.1001"
    assert zs.sim.stats.writes == []


async def test_wildcard_error_rate_hits_every_api_and_clear_restores(zs: ZS) -> None:
    zs.sim.faults.set_error_rate("*", 1.0, "SYS.1000")
    assert (await zs.login()).error_code == "SYS.1000"
    assert (
        await zs.call("PUT", "/v1/management-nodes/actions", json={"getVersion": {}})
    ).error_code == "SYS.1000"
    zs.sim.faults.clear()
    assert (await zs.login()).status == 200


async def test_partial_error_rate_fails_some_calls(zs: ZS) -> None:
    zs.sim.faults.set_error_rate("QueryVmInstance", 0.5)
    statuses = [(await zs.get("/v1/vm-instances?limit=1")).status for _ in range(40)]
    assert 5 < statuses.count(503) < 35
    assert statuses.count(200) + statuses.count(503) == 40


async def test_job_polls_cannot_get_api_errors(zs: ZS) -> None:
    with pytest.raises(ValueError, match="RestServer"):
        zs.sim.faults.set_error_rate("PollJob", 1.0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        zs.sim.faults.set_error_rate("SetVmClockTrack", 1.5)


async def test_dropped_connection_never_reaches_the_api(zs: ZS) -> None:
    zs.sim.stats.reset()
    zs.sim.faults.drop_rate = 1.0
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await zs.get("/v1/vm-instances")
    assert zs.sim.stats.calls["QueryVmInstance"] == 0


async def test_proxy_502_is_html(zs: ZS) -> None:
    zs.sim.faults.html502_rate = 1.0
    resp = await zs.get("/v1/vm-instances")
    assert resp.status == 502
    assert resp.headers["Content-Type"].startswith("text/html")
    assert "502 Bad Gateway" in resp.text


async def test_lost_202_still_runs_the_job_and_its_uuid_recovers_it(zs: ZS) -> None:
    uuid = zs.sim.state.vm_uuids()[0]
    job_uuid = uuidlib.uuid4().hex
    zs.sim.faults.lost_accept_rate = 1.0
    request = http_request(
        "PUT",
        f"/zstack/v1/vm-instances/{uuid}/actions",
        {**zs.auth(), "X-Job-UUID": job_uuid},
        {"setVmClockTrack": {"track": "guest"}},
    )
    assert await raw_exchange(zs.sim, request) == b""  # the connection closed without a response
    zs.sim.faults.lost_accept_rate = 0.0
    recovered = await zs.poll(f"{zs.base}/v1/api-jobs/{job_uuid}")
    assert (recovered.status, recovered.json()["inventory"]["uuid"]) == (200, uuid)
    assert [(w.uuid, w.track) for w in zs.sim.stats.writes] == [(uuid, "guest")]


async def test_a_resent_lost_submit_meets_the_duplicate_check(zs: ZS) -> None:
    """aiohttp resends a PUT once after a disconnect; with the same X-Job-UUID ZStack >= 4.6 refuses the
    copy, and the first submission's job is the one to poll."""
    uuid = zs.sim.state.vm_uuids()[0]
    job_uuid = uuidlib.uuid4().hex
    zs.sim.faults.lost_accept_rate = 1.0
    resent = await zs.set_track(uuid, "guest", headers={"X-Job-UUID": job_uuid})
    assert (resent.status, resent.text) == (400, f"Duplicate job uuid[{job_uuid}]")
    assert zs.sim.stats.calls["SetVmClockTrack"] == 2
    assert (await zs.poll(f"{zs.base}/v1/api-jobs/{job_uuid}")).status == 200
    assert len(zs.sim.stats.writes) == 1


async def test_expire_all_sessions(zs: ZS) -> None:
    zs.sim.faults.expire_all_sessions()
    assert (await zs.get("/v1/vm-instances")).error_code == "ID.1001"
    await zs.login()
    assert (await zs.get("/v1/vm-instances")).status == 200


async def test_management_node_not_ready(zs: ZS) -> None:
    earlier = await zs.set_track(zs.sim.state.vm_uuids()[1], "guest")
    zs.sim.faults.ready = False
    ready = await zs.call("GET", "/v1/management-nodes/ready")
    assert ready.error_code == "SYS.1010"
    assert "is not ready yet" in ready.json()["error"]["details"]
    assert (await zs.get("/v1/vm-instances")).error_code == "SYS.1010"
    assert (await zs.login()).error_code == "SYS.1010"
    assert (
        await zs.wait_job(await zs.set_track(zs.sim.state.vm_uuids()[0], "guest"))
    ).error_code == "SYS.1010"
    assert (await zs.wait_job(earlier)).status in (200, 503)  # job polls are still answered


async def test_stats_count_calls_writes_and_peak_concurrency(make_sim: MakeSim, zs_for: ZSFor) -> None:
    zs = zs_for(await make_sim())
    await zs.login()
    uuid = zs.sim.state.vm_uuids()[0]
    await zs.wait_job(await zs.set_track(uuid, "host"))
    assert zs.sim.stats.calls["LogInByAccount"] == 1
    assert zs.sim.stats.calls["SetVmClockTrack"] == 1
    assert zs.sim.stats.calls["PollJob"] >= 1
    assert [(w.uuid, w.track) for w in zs.sim.stats.writes] == [(uuid, "host")]
    zs.sim.stats.reset()
    assert (zs.sim.stats.calls, zs.sim.stats.writes, zs.sim.stats.max_in_flight) == ({}, [], 0)
    zs.sim.faults.latency = 0.2
    await asyncio.gather(*(zs.get("/v1/vm-instances?limit=1") for _ in range(6)))
    assert zs.sim.stats.max_in_flight == 6
    assert zs.sim.stats.calls["QueryVmInstance"] == 6
