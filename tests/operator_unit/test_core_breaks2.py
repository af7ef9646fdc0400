"""Red team of issue 14's two core changes (the start-up round; the per-reconcile overhead cuts): each test
drives the real code (PolicyController on test_controller's FakeKube, the real client and the simulator over
loopback) into a moment where a promise of design.md §5 or README "How reconciles are scheduled" breaks."""

from __future__ import annotations

from collections import Counter

from vmclock.simulator import Simulator, SimulatorConfig
from vmclock.zstack import AccountCredentials, ZStackClient
from vmclock.zstack.options import ClientOptions

from . import test_controller

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
