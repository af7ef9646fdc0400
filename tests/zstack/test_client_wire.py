"""What the wire throws at the client: proxies, drops, timeouts, plain-text errors, garbage, load."""

from __future__ import annotations

import asyncio

import pytest

from vmclock.simulator import Simulator
from vmclock.zstack import ZStackClient, ZStackError
from vmclock.zstack.errors import GARBAGE, HTTP, TIMEOUT, TRANSPORT

from .recorder import RecordingProxy, Seen, Tamper
from .support import ADMIN, CallLog, MakeClient


async def test_concurrent_requests_are_capped(sim: Simulator, make_client: MakeClient) -> None:
    client = make_client(sim.endpoint, max_concurrent_requests=8)
    await client.login()
    sim.faults.latency = 0.02
    uuids = sim.state.vm_uuids()
    await asyncio.gather(*(client.get_vm_inventories([uuids[i % len(uuids)]]) for i in range(200)))
    assert sim.stats.max_in_flight == 8


async def test_concurrent_jobs_respect_the_cap_while_polling(sim: Simulator, make_client: MakeClient) -> None:
    client = make_client(sim.endpoint, max_concurrent_requests=4)
    sim.faults.latency = 0.01
    await asyncio.gather(*(client.set_clock_track(u, "guest") for u in sim.state.vm_uuids()))
    assert sim.stats.max_in_flight == 4
    assert len(sim.stats.writes) == len(sim.state.vm_uuids())


@pytest.mark.parametrize(("fault", "code"), [("html502_rate", GARBAGE), ("drop_rate", TRANSPORT)])
async def test_proxy_502s_and_dropped_connections_are_retried(
    sim: Simulator, client: ZStackClient, call_log: CallLog, fault: str, code: str
) -> None:
    await client.login()
    setattr(sim.faults, fault, 0.3)
    uuids = sim.state.vm_uuids()
    results = await asyncio.gather(*(client.get_vm_inventories([u]) for u in uuids))
    await asyncio.gather(*(client.set_clock_track(u, "guest") for u in uuids[:10]))
    assert all(len(r) == 1 for r in results)
    assert code in call_log.codes("QueryVmInstance")
    assert sorted(w.uuid for w in sim.stats.writes) == sorted(uuids[:10])


async def test_30_percent_sys_1001_on_queries_all_succeed(sim: Simulator, make_client: MakeClient) -> None:
    client = make_client(sim.endpoint, retry_attempts=10)
    sim.faults.set_error_rate("QueryVmInstance", 0.3)
    uuids = sim.state.vm_uuids()
    results = await asyncio.gather(*(client.get_vm_inventories([u]) for u in uuids))
    assert all(len(r) == 1 for r in results)
    assert sim.stats.calls["QueryVmInstance"] > len(uuids)


async def test_request_timeout_applies_and_is_retried_boundedly(
    sim: Simulator, make_client: MakeClient, call_log: CallLog
) -> None:
    client = make_client(sim.endpoint, request_timeout=0.1, retry_attempts=2)
    sim.faults.latency = 0.5
    with pytest.raises(ZStackError) as caught:
        await client.get_version()
    assert caught.value.code == TIMEOUT
    assert call_log.codes("GetVersion") == [TIMEOUT, TIMEOUT]


async def test_plain_text_404_is_terminal(sim: Simulator, make_client: MakeClient, call_log: CallLog) -> None:
    client = make_client(sim.endpoint + "/not-zstack")
    with pytest.raises(ZStackError) as caught:
        await client.get_version()
    assert (caught.value.code, caught.value.http_status) == (HTTP, 404)
    assert not caught.value.retryable
    assert call_log.codes("GetVersion") == [HTTP]


def garbage_200(api_path: str, times: int) -> tuple[list[int], Tamper]:
    """A tamper hook turning the first `times` 200s of `api_path` into an HTML page."""
    spoiled: list[int] = []

    def tamper(seen: Seen, status: int, body: bytes) -> tuple[int, bytes] | None:
        if api_path in seen.target and status == 200 and len(spoiled) < times:
            spoiled.append(status)
            return 200, b"<html><body>Welcome to nginx!</body></html>"
        return None

    return spoiled, tamper


async def test_garbage_200_is_a_garbage_error_after_bounded_retries(
    sim: Simulator, make_client: MakeClient, call_log: CallLog
) -> None:
    async with RecordingProxy(sim.endpoint) as proxy:
        _, proxy.tamper = garbage_200("/management-nodes/actions", times=100)
        client = make_client(proxy.endpoint, retry_attempts=3)
        with pytest.raises(ZStackError) as caught:
            await client.get_version()
    assert caught.value.code == GARBAGE
    assert caught.value.http_status == 200
    assert "nginx" in caught.value.details
    assert call_log.codes("GetVersion") == [GARBAGE] * 3


async def test_garbage_job_poll_is_polled_again(sim: Simulator, make_client: MakeClient) -> None:
    async with RecordingProxy(sim.endpoint) as proxy:
        spoiled, proxy.tamper = garbage_200("/api-jobs/", times=1)
        client = make_client(proxy.endpoint)
        uuid = sim.state.vm_uuids()[0]
        inventory = await client.set_clock_track(uuid, "guest")
        await client.close()
    assert spoiled
    assert inventory.uuid == uuid
    assert sim.stats.calls["SetVmClockTrack"] == 1  # the job was not resubmitted


async def test_a_failing_metrics_hook_does_not_fail_calls(sim: Simulator) -> None:
    def broken(api: str, code: str, seconds: float) -> None:
        raise RuntimeError("metrics backend down")

    async with ZStackClient(sim.endpoint, ADMIN, on_call=broken) as client:
        assert await client.get_vm_inventories(sim.state.vm_uuids()[:2])


async def test_on_call_reports_each_attempt_with_its_code(
    sim: Simulator, client: ZStackClient, call_log: CallLog
) -> None:
    sim.faults.set_error_rate("SetVmClockTrack", 1.0, "SYS.1001")
    with pytest.raises(ZStackError):
        await client.set_clock_track(sim.state.vm_uuids()[0], "guest")
    sim.faults.clear()
    await client.set_clock_track(sim.state.vm_uuids()[0], "guest")
    assert call_log.codes("LogInByAccount") == ["OK"]
    assert call_log.codes("SetVmClockTrack") == ["SYS.1001"] * client.options.retry_attempts + ["OK"]
    assert all(seconds >= 0.0 for _, _, seconds in call_log.events)
