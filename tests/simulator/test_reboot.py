"""RebootVmInstance: an async job in the VM's chain, only from a rebootable state, rebuilding the domain."""

from __future__ import annotations

import asyncio

import aiohttp

from .conftest import MakeSim, ZSFor
from .rawhttp import ZS

NOT_RUNNING = (
    "current vm instance state[Stopped] doesn't allow to proceed "
    "message[org.zstack.header.vm.RebootVmInstanceMsg], allowed states are [Crashed, NoState, Running]"
)


def _running(zs: ZS, count: int) -> list[str]:
    uuids = [u for u in zs.sim.state.vm_uuids() if zs.sim.state.vm(u).state == "Running"][:count]
    assert len(uuids) == count
    return uuids


async def test_a_reboot_makes_the_stored_track_effective_and_moves_last_op_date(
    make_sim: MakeSim, zs_for: ZSFor
) -> None:
    zs = zs_for(await make_sim(reboot_seconds=1.1))
    await zs.login()
    (uuid,) = _running(zs, 1)
    state = zs.sim.state
    other = "guest" if state.track_of(uuid) == "host" else "host"
    state.set_track_behind(uuid, other)
    before = state.vm(uuid).inventory()["lastOpDate"]
    assert state.domain_tracks[uuid] != other  # stored, not effective on the running domain

    accepted = await zs.reboot(uuid)
    assert accepted.status == 202
    await asyncio.sleep(0.5)
    assert state.vm(uuid).state == "Rebooting"
    done = await zs.wait_job(accepted)

    assert done.status == 200, done.text
    assert done.json()["inventory"]["state"] == "Running"
    assert done.json()["inventory"]["lastOpDate"] != before
    assert state.domain_tracks[uuid] == other
    (reboot,) = zs.sim.stats.reboots.done
    assert (reboot.uuid, reboot.ok) == (uuid, True)
    assert reboot.end - reboot.start >= 1.0


async def test_only_a_rebootable_vm_is_rebooted_with_zstacks_nested_error(zs: ZS) -> None:
    (uuid,) = _running(zs, 1)
    zs.sim.state.set_vm_state(uuid, "Stopped")

    done = await zs.wait_job(await zs.reboot(uuid))

    assert done.status == 503
    error = done.json()["error"]
    assert (error["code"], error["description"]) == ("VM.1003", "Unable to reboot a vm")
    assert error["cause"]["code"] == "VM.1003"
    assert error["cause"]["cause"]["code"] == "VM.1010"
    assert error["details"] == error["cause"]["cause"]["details"] == NOT_RUNNING
    assert zs.sim.state.vm(uuid).state == "Stopped"
    assert zs.sim.stats.reboots.done == []


async def test_an_unknown_vm_is_sys_1003(zs: ZS) -> None:
    done = await zs.wait_job(await zs.reboot("0" * 32))
    assert done.error_code == "SYS.1003"


async def test_concurrent_reboots_are_recorded_with_their_peak(make_sim: MakeSim, zs_for: ZSFor) -> None:
    zs = zs_for(await make_sim(reboot_seconds=0.3))
    await zs.login()
    uuids = _running(zs, 3)
    accepted = [await zs.reboot(u) for u in uuids]
    await asyncio.gather(*(zs.wait_job(a) for a in accepted))
    assert zs.sim.stats.reboots.max_concurrent == 3
    assert sorted(r.uuid for r in zs.sim.stats.reboots.done) == sorted(uuids)
    zs.sim.stats.reset()
    assert zs.sim.stats.to_json()["maxConcurrentReboots"] == 0


async def test_reboots_of_one_vm_run_one_after_the_other(make_sim: MakeSim, zs_for: ZSFor) -> None:
    zs = zs_for(await make_sim(reboot_seconds=0.3))
    await zs.login()
    (uuid,) = _running(zs, 1)
    first, second = await zs.reboot(uuid), await zs.reboot(uuid)
    assert [(await zs.wait_job(a)).status for a in (first, second)] == [200, 200]
    assert zs.sim.stats.reboots.max_concurrent == 1


async def test_a_vm_that_does_not_come_back_fails_the_job_over_the_admin_fault(
    zs: ZS, http: aiohttp.ClientSession
) -> None:
    (uuid,) = _running(zs, 1)
    async with http.put(f"{zs.sim.endpoint}/_sim/faults", json={"rebootFailures": {uuid: "Unknown"}}) as resp:
        assert resp.status == 200
        assert (await resp.json())["rebootFailures"] == {uuid: "Unknown"}

    done = await zs.wait_job(await zs.reboot(uuid))

    assert done.error_code == "VM.1003"
    assert done.json()["error"]["cause"]["cause"]["code"] == "HOST.1005"
    assert zs.sim.state.vm(uuid).state == "Unknown"
    assert [r.ok for r in zs.sim.stats.reboots.done] == [False]
    async with http.get(f"{zs.sim.endpoint}/_sim/stats") as resp:
        assert (await resp.json())["reboots"][0]["ok"] is False


async def test_a_bad_reboot_failure_state_is_refused(zs: ZS, http: aiohttp.ClientSession) -> None:
    body = {"rebootFailures": {"a" * 32: "Running"}}
    async with http.put(f"{zs.sim.endpoint}/_sim/faults", json=body) as resp:
        assert resp.status == 400
        assert "Stopped, Unknown" in (await resp.json())["error"]
