"""Account sessions and AccessKey signing against the simulator: login reuse, re-login, logout, secrecy."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from vmclock.simulator import Simulator, SimulatorConfig
from vmclock.zstack import AccessKeyCredentials, AccountCredentials, ZStackClient, ZStackError
from vmclock.zstack.errors import HTTP

from .recorder import RecordingProxy
from .support import CallLog, MakeClient

SECRET_PASSWORD = "Tr0ub4dor&3-not-in-logs"
AK_ID, AK_SECRET = "ak-test-id", "ak-secret-never-logged"


async def test_one_login_is_reused_by_many_calls(sim: Simulator, client: ZStackClient) -> None:
    uuids = sim.state.vm_uuids()
    for _ in range(5):
        await client.get_vm_inventories(uuids[:3])
    await asyncio.gather(*(client.get_vm_inventories([u]) for u in uuids))
    assert sim.stats.calls["LogInByAccount"] == 1
    assert sim.stats.calls["QueryVmInstance"] == 5 + len(uuids)


async def test_concurrent_first_calls_share_one_login(sim: Simulator, client: ZStackClient) -> None:
    await asyncio.gather(*(client.get_vm_inventories([u]) for u in sim.state.vm_uuids()))
    assert sim.stats.calls["LogInByAccount"] == 1


async def test_wrong_password_is_terminal_id_1000_and_never_echoed(
    sim: Simulator, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bad = AccountCredentials("admin", SECRET_PASSWORD)
    client = make_client(sim.endpoint, bad)
    with pytest.raises(ZStackError) as caught:
        await client.login()
    assert caught.value.code == "ID.1000"
    assert not caught.value.retryable
    assert sim.stats.calls["LogInByAccount"] == 1
    with pytest.raises(ZStackError, match=r"ID\.1000"):
        await asyncio.gather(*(client.get_vm_inventories([u]) for u in sim.state.vm_uuids()[:20]))
    assert sim.stats.calls["LogInByAccount"] == 2  # the 20 concurrent callers shared one failing login
    texts = [str(caught.value), repr(caught.value), repr(client), repr(bad), caplog.text]
    for text in texts:
        assert SECRET_PASSWORD not in text
        assert bad.password_sha512 not in text


async def test_expired_session_on_a_query_logs_in_again_once(sim: Simulator, client: ZStackClient) -> None:
    uuids = sim.state.vm_uuids()[:3]
    await client.get_vm_inventories(uuids)
    sim.faults.expire_all_sessions()
    assert len(await client.get_vm_inventories(uuids)) == 3
    assert sim.stats.calls["LogInByAccount"] == 2
    assert sim.stats.calls["QueryVmInstance"] == 3  # first, the ID.1001 answer, the resubmit


async def test_expired_session_on_a_job_resubmits_under_a_new_job_uuid(
    sim: Simulator, make_client: MakeClient
) -> None:
    # 5.3.0 answers a reused X-Job-UUID with 400 "Duplicate job uuid", so success proves a fresh one.
    async with RecordingProxy(sim.endpoint) as proxy:
        client = make_client(proxy.endpoint)
        uuid = sim.state.vm_uuids()[0]
        await client.login()
        sim.faults.expire_all_sessions()
        await client.set_clock_track(uuid, "guest")
    submits = proxy.matching("PUT", f"/vm-instances/{uuid}/actions")
    assert len(submits) == 2
    job_ids = {s.headers["X-Job-UUID"] for s in submits}
    assert len(job_ids) == 2
    assert all(len(j) == 32 and int(j, 16) >= 0 for j in job_ids)
    sessions = {s.headers["Authorization"] for s in submits}
    assert len(sessions) == 2  # the resubmit carries the new session
    assert sim.stats.calls["LogInByAccount"] == 2
    assert [w.uuid for w in sim.stats.writes] == [uuid]
    assert sim.state.track_of(uuid) == "guest"


async def test_session_error_that_persists_is_raised_after_one_relogin(
    sim: Simulator, client: ZStackClient, call_log: CallLog
) -> None:
    sim.faults.set_error_rate("QueryVmInstance", 1.0, "ID.1001")
    with pytest.raises(ZStackError) as caught:
        await client.get_vm_inventories(sim.state.vm_uuids()[:1])
    assert caught.value.session_expired
    assert sim.stats.calls["LogInByAccount"] == 2
    assert sim.stats.calls["QueryVmInstance"] == 2
    assert call_log.codes("QueryVmInstance") == ["ID.1001", "ID.1001"]


async def test_close_logs_out_once_and_closes_the_session(sim: Simulator, make_client: MakeClient) -> None:
    client = make_client(sim.endpoint)
    async with client:
        await client.get_vm_inventories(sim.state.vm_uuids()[:1])
    assert sim.stats.calls["LogOut"] == 1
    await client.close()
    assert sim.stats.calls["LogOut"] == 1
    with pytest.raises(RuntimeError, match="closed"):
        await client.get_vm_inventories(sim.state.vm_uuids()[:1])


async def test_close_without_a_session_does_not_call_logout(sim: Simulator, make_client: MakeClient) -> None:
    async with make_client(sim.endpoint) as client:
        await client.get_version()  # needs no session
    assert sim.stats.calls["LogOut"] == 0
    assert sim.stats.calls["LogInByAccount"] == 0


async def test_logout_ends_the_session_and_the_next_call_logs_in(
    sim: Simulator, client: ZStackClient
) -> None:
    await client.login()
    await client.logout()
    await client.get_vm_inventories(sim.state.vm_uuids()[:1])
    assert sim.stats.calls["LogOut"] == 1
    assert sim.stats.calls["LogInByAccount"] == 2


async def test_session_ids_never_reach_logs_or_errors(
    sim: Simulator, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []
    async with RecordingProxy(sim.endpoint) as proxy:
        client = make_client(proxy.endpoint)
        await client.get_vm_inventories(sim.state.vm_uuids())
        sim.faults.expire_all_sessions()
        sim.faults.drop_rate = 0.3
        await client.set_clock_track(sim.state.vm_uuids()[0], "guest")
        sim.faults.set_error_rate("*", 1.0, "ID.1001")
        try:
            await client.get_vm_inventories(sim.state.vm_uuids())
        except ZStackError as err:
            errors.append(str(err))
        sim.faults.clear()
        await client.close()
    sessions = {
        s.headers["Authorization"].removeprefix("OAuth ") for s in proxy.seen if "Authorization" in s.headers
    }
    assert len(sessions) >= 2
    assert errors
    for session in sessions:
        assert session not in caplog.text
        assert all(session not in text for text in errors)
    assert "admin" in repr(client)


def access_key_sim() -> Simulator:
    return Simulator(SimulatorConfig(vms=10, job_latency=0.02, access_keys={AK_ID: AK_SECRET}))


async def test_access_key_signatures_are_accepted_without_sessions(make_client: MakeClient) -> None:
    async with access_key_sim() as sim:
        client = make_client(sim.endpoint, AccessKeyCredentials(AK_ID, AK_SECRET))
        await client.login()
        uuids = sim.state.vm_uuids()
        assert len(await client.get_vm_inventories(uuids)) == len(uuids)
        await client.set_clock_track(uuids[0], "guest")
        assert await client.get_clock_tracks(uuids[:1]) == {uuids[0]: "guest"}
        await client.close()
        assert sim.stats.calls["LogInByAccount"] == 0
        assert sim.stats.calls["LogOut"] == 0
        assert AK_SECRET not in repr(client)


async def test_wrong_access_key_secret_is_rejected_terminally(
    make_client: MakeClient, call_log: CallLog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with access_key_sim() as sim:
        client = make_client(sim.endpoint, AccessKeyCredentials(AK_ID, "not-the-secret"))
        with pytest.raises(ZStackError) as caught:
            await client.get_vm_inventories(sim.state.vm_uuids())
    assert (caught.value.code, caught.value.http_status) == (HTTP, 403)
    assert call_log.codes("QueryVmInstance") == [HTTP]  # not retried
    assert "not-the-secret" not in str(caught.value) + caplog.text


async def test_skewed_clock_signatures_are_rejected(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with access_key_sim() as sim:
        real_time = time.time
        monkeypatch.setattr(time, "time", lambda: real_time() - 16 * 60)  # beyond ZStack's 15 min window
        client = make_client(sim.endpoint, AccessKeyCredentials(AK_ID, AK_SECRET))
        monkeypatch.undo()
        with pytest.raises(ZStackError) as caught:
            await client.get_vm_inventories(sim.state.vm_uuids())
    assert caught.value.http_status == 403
    assert "Skewed" in caught.value.details
