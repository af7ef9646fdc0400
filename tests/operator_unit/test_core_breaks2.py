"""Red team of issue 14's two core changes (the start-up round; the per-reconcile overhead cuts): each test
drives the real code (PolicyController on test_controller's FakeKube, the real client and the simulator over
loopback) into a moment where a promise of design.md §5 or README "How reconciles are scheduled" breaks."""

from __future__ import annotations

from collections import Counter

from vmclock.engine.spec import CONNECTION_PLURAL
from vmclock.refs import Ref
from vmclock.simulator import Simulator, SimulatorConfig
from vmclock.zstack import AccountCredentials, ZStackClient
from vmclock.zstack.options import ClientOptions

from . import test_controller
from .test_controller import CONNECTION, NS, Parts, reconcile_starts

sim = test_controller.sim
parts = test_controller.parts
no_event_posting = test_controller.no_event_posting

ADMIN = AccountCredentials("admin", "password")


async def test_a_vm_expunged_between_the_whole_listings_pages_hides_an_existing_vm() -> None:
    """zstack/listing.py's whole-listing read (issue 14 B): the union of many policies' VMs (2,500 of a
    3,000-VM installation) is read as a count and 3 offset pages instead of 11 UUID batches. A VM expunged
    between page 1 and page 2 (any VM, not one of ours) shifts every later row one place up, so the row at
    offset 1,000 is never returned: an existing VM of ours reads as "does not exist". The UUID batches each
    fit one page and never had this gap. Promise broken: observe before acting, a reading is what ZStack
    has (a VM that exists is never reported missing, design.md §5)."""
    calls: Counter[str] = Counter()
    async with Simulator(SimulatorConfig(vms=3000, seed=21)) as simulator:
        uuids = sorted(simulator.state.vm_uuids())  # the order the listing pages in
        wanted = uuids[1:2501]

        def on_call(api: str, code: str, seconds: float) -> None:
            calls[api] += 1
            if api == "QueryVmInstance" and calls[api] == 2:  # the count, then page 1 came back
                simulator.state.delete_vm(uuids[0])  # expunged by someone else, outside our set

        options = ClientOptions(retry_base_delay=0.001, retry_max_delay=0.01)
        async with ZStackClient(simulator.endpoint, ADMIN, options, on_call=on_call) as client:
            found = await client.get_vm_inventories(wanted)
        missing = sorted(set(wanted) - set(found))
        assert missing == [], (
            f"{len(missing)} existing VMs read as absent ({missing[:3]}): the pages of a listing that "
            f"changed between them skipped rows ({dict(calls)})"
        )


async def test_vms_expunged_between_the_whole_listings_pages_misread_other_vms_tracks() -> None:
    """The same whole-listing read for tracks (QueryResourceConfig by `resourceUuid?=`, 2,500 of 3,000
    VMs): every VM drifted to `host` on its own resource config while the global default is `guest`. Other
    VMs are expunged (with their config rows) between page 1 and page 2, so rows of ours at the page
    boundary are skipped and those VMs read as inheriting the global `guest`: a drift the policy must report
    and correct reads as in sync. Promise broken: observe before acting; a drift is reported within the
    resync interval (design.md §3.5), never hidden by a listing that changed under its pages."""
    calls: Counter[str] = Counter()
    async with Simulator(SimulatorConfig(vms=3000, seed=22)) as simulator:
        simulator.state.set_global_track("guest")
        uuids = sorted(simulator.state.vm_uuids())
        for uuid in uuids:
            simulator.state.set_track_behind(uuid, "host")
        wanted, others = uuids[:2500], uuids[2500:]

        def on_call(api: str, code: str, seconds: float) -> None:
            calls[api] += 1
            if api == "QueryResourceConfig" and calls[api] == 2:  # the count, then page 1 came back
                for uuid in others:
                    simulator.state.delete_vm(uuid)  # expunged by someone else, outside our set

        options = ClientOptions(retry_base_delay=0.001, retry_max_delay=0.01)
        async with ZStackClient(simulator.endpoint, ADMIN, options, on_call=on_call) as client:
            tracks = await client.get_clock_tracks(wanted, existing=wanted)
        misread = sorted(u for u in wanted if tracks.get(u) != "host")
        assert misread == [], (
            f"{len(misread)} VMs on track host read as {tracks.get(misread[0]) if misread else None} "
            f"(the global default): their own rows were skipped by pages of a changing listing "
            f"({dict(calls)})"
        )


def _second_connection(parts: Parts, name: str) -> Ref:
    """Another ZStackConnection in the same namespace (a second management node of the tenant; here the
    same simulator, which changes nothing for the queue: its flows are the connections)."""
    parts.kube.objects[(CONNECTION_PLURAL, NS, name)] = {
        "metadata": {"namespace": NS, "name": name, "generation": 1, "uid": f"uid-{name}"},
        "spec": {"endpoint": parts.sim.endpoint, "credentialsSecretRef": {"name": "creds"}},
    }
    return Ref(NS, name)


async def test_a_connection_turning_ready_at_start_up_does_not_starve_the_other_connection(
    parts: Parts,
) -> None:
    """Fairness across connections (design.md §5.11, README "How reconciles are scheduled": a flow with
    1,000 queued keys delays another flow's one by at most one turn). After an operator start no policy has
    a runtime yet; a connection whose first check finds it changed (Ready again, or edited while the
    operator was away) kicks all its policies (`kick_connection`), and so does a second connection of the
    namespace. `_flow_of` files every key without a runtime under the flow (namespace, ""), so both
    connections' policies share one FIFO and the second connection's one policy waits behind all of the
    first's; the resume handler that would name its connection comes too late (the key is dirty already)."""
    sim = parts.sim
    sim.faults.latency = 0.02
    other = _second_connection(parts, "other")
    vms = sim.state.vm_uuids()
    busy = [parts.policy(f"busy{i:02d}", [vms[i]]) for i in range(30)]
    lone = parts.policy("lone", [vms[39]], connectionRef={"name": other.name})
    started = reconcile_starts(parts)
    parts.controller.kick_connection(CONNECTION)  # its first check after the start: Ready again
    parts.controller.kick_connection(other)
    await parts.settle(lambda: all(parts.due(ref) for ref in [*busy, lone]), within=60)

    workers = 4  # test_controller's running_parts
    assert started.index(lone.name) <= workers, (
        f"the other connection's policy began {started.index(lone.name) + 1}th of {len(started)}: it "
        "waited behind every policy of the busy connection (one flow for all keys without a runtime)"
    )
