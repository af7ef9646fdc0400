"""What new small policies ask of the real API server (issue 14: many small policies within 1.5x of one
big one): their ZStackConnection comes from the operator's watch (kopf's index) and is read only once, to
confirm it before the policy's first ZStack write (the index may lag a watch event), and no GET of record
ConfigMaps that cannot exist before a policy's first status. Counted by the kube-apiserver itself
(`apiserver_request_total`), so this is what the operator sent through kopf's real indexes and handlers.
"""

from __future__ import annotations

from harness import SimVm, policy
from harness.e2e import CONNECTION_NAME, E2E, READY_TIMEOUT

POLICIES, SIZE = 10, 2


def restarts_pending(vm: SimVm) -> bool:
    """A write to this VM leaves it waiting for a restart (a running Windows VM), so its policy creates
    both records before its writes; a policy that creates only its previous tracks reads the other one."""
    return vm.state == "Running" and vm.platform.startswith("Windows")


def test_new_policies_read_their_connection_once_to_confirm_it_and_not_their_records(e2e: E2E) -> None:
    e2e.connect()
    e2e.kubectl(
        "wait", f"zstackconnection/{CONNECTION_NAME}", "--for=condition=Ready",
        f"--timeout={READY_TIMEOUT:.0f}s", namespace=e2e.namespace,
    )  # fmt: skip
    groups = {f"p{i:02d}": e2e.vms.take(SIZE, track="host", where=restarts_pending) for i in range(POLICIES)}
    before = e2e.api_requests()
    e2e.apply_until_ready(*(policy(name, "guest", uuids) for name, uuids in groups.items()))
    spent = e2e.api_requests() - before
    print(f"API requests for {POLICIES} new policies of {SIZE} VMs each: {dict(sorted(spent.items()))}")
    assert spent["GET zstackconnections"] == POLICIES, (
        "from the watch, confirmed once before each one's writes"
    )
    assert spent["GET configmaps"] == 0, "a new policy's records cannot exist yet"
    assert spent["POST configmaps"] == 2 * POLICIES, "each created its previous tracks and pending restarts"
