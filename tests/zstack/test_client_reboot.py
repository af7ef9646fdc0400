"""RebootVmInstance through the client: one submit, polled like every job, ZStack's errors surfaced."""

from __future__ import annotations

import pytest

from vmclock.simulator import Simulator
from vmclock.zstack import ZStackClient, ZStackError
from vmclock.zstack.errors import NotSent


def _running(sim: Simulator) -> str:
    return next(u for u in sim.state.vm_uuids() if sim.state.vm(u).state == "Running")


async def test_reboot_returns_the_inventory_after_the_reboot(sim: Simulator, client: ZStackClient) -> None:
    uuid = _running(sim)
    sim.state.set_track_behind(uuid, "guest")
    inventory = await client.reboot_vm(uuid)
    assert (inventory.uuid, inventory.state) == (uuid, "Running")
    assert sim.state.domain_tracks[uuid] == "guest"
    assert [r.uuid for r in sim.stats.reboots.done] == [uuid]


async def test_a_stopped_vm_is_refused_by_zstack(sim: Simulator, client: ZStackClient) -> None:
    uuid = _running(sim)
    sim.state.set_vm_state(uuid, "Stopped")
    with pytest.raises(ZStackError) as raised:
        await client.reboot_vm(uuid)
    assert raised.value.code == "VM.1003"
    assert "state[Stopped]" in str(raised.value)


async def test_a_retryable_failure_is_never_submitted_again(sim: Simulator, client: ZStackClient) -> None:
    """SetVmClockTrack retries SYS.1001; a reboot must not (it could reboot the guest twice)."""
    sim.faults.set_error_rate("RebootVmInstance", 1.0, "SYS.1001")
    with pytest.raises(ZStackError) as raised:
        await client.reboot_vm(_running(sim))
    assert raised.value.code == "SYS.1001"
    assert sim.stats.calls["RebootVmInstance"] == 1


async def test_may_send_withdraws_the_reboot(sim: Simulator, client: ZStackClient) -> None:
    with pytest.raises(NotSent):
        await client.reboot_vm(_running(sim), may_send=lambda: "not sent: the window closed")
    assert sim.stats.calls["RebootVmInstance"] == 0


async def test_a_malformed_uuid_is_refused_before_sending(sim: Simulator, client: ZStackClient) -> None:
    with pytest.raises(ValueError, match="32 lowercase hex"):
        await client.reboot_vm("not-a-uuid")
