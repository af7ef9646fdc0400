"""A rollout's reboots go through the connection the API server has, not a lagging view of it (issue 14).

A slice that sends reboots after a reconcile that wrote nothing has had its connection from the watch's index
only: the connection is confirmed before each batch is leased, like a reconcile's first write. Same rig as
test_rolling_breaks.py: the real controller, rollout and connection manager, the simulator, FakeKube.
"""

from __future__ import annotations

from vmclock.engine.spec import CONNECTION_PLURAL
from vmclock.refs import Ref

from .test_controller import CONNECTION, no_event_posting
from .test_rolling_breaks import Rig, rig

__all__ = ["no_event_posting"]  # the autouse fixture switching kopf's event posting off


def connection_status(r: Rig, ref: Ref) -> str | None:
    return str((r.body(ref).get("status", {}).get("connection") or {}).get("reason") or "") or None


async def test_no_reboot_batch_is_sent_through_a_connection_the_api_server_no_longer_has() -> None:
    """Three VMs rebooted one at a time, each slice cut by the reconcile's time bound while a reboot is out;
    while the first reboots, the connection is deleted and its DELETED event has not reached the index. The
    slice of a later reconcile (which writes no track: nothing confirmed its connection yet) finds it out
    before it leases the connection for its batch: the other two VMs are not rebooted, and the policy says
    its connection is not found."""
    async with rig(reboot_seconds=2.0, reconcile_seconds=1.0) as r:
        vms = r.windows_vms(3)
        ref = r.rolling("p", vms)
        r.controller.enqueue(ref)
        await r.settle(lambda: vms[0] in r.sim.stats.reboots.running)
        r.kube.objects.pop((CONNECTION_PLURAL, *CONNECTION))
        await r.settle(lambda: connection_status(r, ref) == "NotFound" or len(r.rebooted()) > 1, within=30)
        await r.settle(lambda: not r.controller.queue.is_processing(ref))
        assert r.rebooted() == [vms[0]]
        assert connection_status(r, ref) == "NotFound"
