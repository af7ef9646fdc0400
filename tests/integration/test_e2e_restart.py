"""A restart catches up with batched reads (issue 14): real kube-apiserver + etcd, the simulator and the
operator as processes.

Many in-sync policies, the operator stopped, a few of their VMs changed behind its back, the operator
started again: every policy is looked at once more, and the drifted VMs are written back; what that costs
ZStack in reads must grow with the VMs (one batched set of queries per connection), not with the number of
policies (a batch per few policies, as kopf resumes them one by one). A count, not a time.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from harness import policy, wait_for
from harness.e2e import E2E, READY_TIMEOUT

POLICIES, SIZE, DRIFTED = 60, 10, 3
SIMULATED_VMS = 1_000  # the conftest's simulator seeds this many; about 80 % on track host
OBSERVING = ("QueryVmInstance", "QueryResourceConfig", "QueryGlobalConfig", "QuerySystemTag")
"""What an observation asks ZStack (inventories, tracks, the global default); not logins, version checks or
job polls, which do not depend on how reads are batched."""
UUIDS_PER_QUERY = 200
"""At least this many 32-character UUIDs fit one query's request line (the client's bound is 8 KiB)."""
QUIET_RESYNC = 3600  # no resync round of the connection inside the measurement


def reconciled_since(e2e: E2E, offset: int) -> set[str]:
    """Policies of this test whose reconcile finished (the controller's one line per reconcile) after the
    log's first `offset` characters."""
    line = re.compile(rf"VmClockPolicy {re.escape(e2e.namespace)}/(\S+) generation \d+: \d+ writes")
    return set(line.findall(e2e.operator.log_text()[offset:]))


def test_a_restart_reads_the_vms_of_many_in_sync_policies_in_one_batched_round(e2e: E2E) -> None:
    e2e.connect(resync_seconds=QUIET_RESYNC)
    groups = {f"p{i:03d}": e2e.vms.take(SIZE, track="host") for i in range(POLICIES)}
    e2e.tenant.apply(*(policy(name, "host", uuids) for name, uuids in groups.items()))
    e2e.kubectl(
        "wait", "vmclockpolicy", "--all", "--for=condition=Ready", f"--timeout={READY_TIMEOUT:.0f}s",
        namespace=e2e.namespace,
    )  # fmt: skip
    assert not e2e.simulator.admin.stats().writes_for(u for g in groups.values() for u in g), "in sync"

    e2e.operator.stop()
    drifted = [uuids[0] for uuids in list(groups.values())[:: POLICIES // DRIFTED]]
    for uuid in drifted:
        e2e.simulator.admin.set_track(uuid, "guest")
    e2e.simulator.admin.reset_stats()
    offset = len(e2e.operator.log_text())
    e2e.operator.start()

    wait_for(
        lambda: reconciled_since(e2e, offset),
        lambda done: done >= set(groups),
        timeout=2 * READY_TIMEOUT,
        what=f"all {POLICIES} policies reconciled after the restart",
    )
    assert e2e.simulator.admin.tracks(drifted) == dict.fromkeys(drifted, "host"), "drift written back"
    calls = Counter(e2e.simulator.admin.stats().calls)
    assert calls["SetVmClockTrack"] == len(drifted), f"only the drifted VMs were written: {dict(calls)}"
    reads = sum(calls[api] for api in OBSERVING)
    vms = POLICIES * SIZE
    # The round's batch (inventories, tracks, the global default), and one small batch of the policies
    # whose reconcile asked while it was being read (they join the batch after it).
    bound = 2 * math.ceil(vms / UUIDS_PER_QUERY) + 1 + 3
    assert reads <= bound, (
        f"{reads} observing reads after a restart with {POLICIES} in-sync policies of {SIZE} VMs "
        f"(bound {bound}: one batched round of {vms} VMs); calls {dict(calls)}"
    )
    print(f"{reads} observing reads (bound {bound}) for {POLICIES} policies after the restart: {dict(calls)}")
