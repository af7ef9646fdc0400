"""Which changes reconcile a policy, and what kopf writes on it (issue 14): real kube-apiserver + etcd, the
simulator and the operator as processes.

kopf no longer keeps its diff base on policies; a predicate on watch events (kopfapp/triggers.py) decides.
So the API server sees no PATCH of a policy itself from the operator (only of its status), and the spec, each
trigger annotation, and nothing else (not our own status writes, not other metadata) cause a reconcile.
Reconciles are counted from the controller's one log line per reconcile.
"""

from __future__ import annotations

import re
import time
from collections import Counter

from harness import PAUSED, POLICY, RECONCILE_REQUESTED_AT, condition_is, holds_for, policy, wait_for
from harness.e2e import E2E, READY_TIMEOUT

POLICIES, SIZE = 20, 3
QUIET_RESYNC = 3600  # no resync round inside a test: every reconcile counted here has a trigger
QUIET_SECONDS = 5.0
"""How long a policy is watched for a reconcile that must not come (a status write's own watch event
comes back within a second)."""
LAST_HANDLED = "operator.vmclock.zstack.io/last-handled-configuration"
WRITES = frozenset({"POST", "PUT", "PATCH", "APPLY", "DELETE"})


def api_writes(e2e: E2E) -> Counter[str]:
    """Write requests the kube-apiserver served so far, as "VERB resource[/subresource]"."""
    return Counter({what: n for what, n in e2e.api_requests().items() if what.split(" ", 1)[0] in WRITES})


def reconciles(e2e: E2E, name: str) -> int:
    """Reconciles of policy `name` the operator finished so far (one log line each)."""
    ref = re.escape(f"{e2e.namespace}/{name}")
    line = re.compile(rf"VmClockPolicy {ref} generation \d+: \d+ writes")
    return len(line.findall(e2e.operator.log_text()))


def connect_quietly(e2e: E2E) -> None:
    """The connection, Ready before any policy exists: its turning Ready queues nothing of this test."""
    e2e.connect(resync_seconds=QUIET_RESYNC)
    wait_for(
        lambda: e2e.tenant.connection("default"),
        lambda c: condition_is(c, "Ready", "True", "Connected"),
        timeout=READY_TIMEOUT,
        what="connection Ready=True/Connected",
    )


def test_new_orphan_policies_become_ready_without_the_operator_patching_them(e2e: E2E) -> None:
    connect_quietly(e2e)
    groups = {f"p{i:02d}": e2e.vms.take(SIZE, track="host") for i in range(POLICIES)}
    before = api_writes(e2e)

    e2e.apply_until_ready(*(policy(name, "guest", uuids) for name, uuids in groups.items()))

    writes = api_writes(e2e) - before
    per_policy = {call: round(count / POLICIES, 2) for call, count in sorted(writes.items())}
    print(f"API server writes per new policy ({POLICIES} policies of {SIZE} VMs): {per_policy}")
    assert writes["PATCH vmclockpolicies"] == 0, f"the policies themselves were patched: {dict(writes)}"
    assert writes["POST vmclockpolicies"] == POLICIES, dict(writes)
    listed = e2e.kubectl.json("get", "vmclockpolicies", "--show-managed-fields", namespace=e2e.namespace)
    for item in listed["items"]:
        meta = item["metadata"]
        assert LAST_HANDLED not in (meta.get("annotations") or {}), meta["name"]
        assert not meta.get("finalizers"), meta["name"]
        main = {(f["manager"], f["operation"]) for f in meta["managedFields"] if not f.get("subresource")}
        assert main == {("kubectl-client-side-apply", "Update")}, (meta["name"], main)
    assert {name: reconciles(e2e, name) for name in groups} == dict.fromkeys(groups, 1), (
        "one reconcile per new policy: its own status writes brought none"
    )


def test_the_spec_and_each_trigger_annotation_reconcile_and_nothing_else_does(e2e: E2E) -> None:
    connect_quietly(e2e)
    uuids = e2e.vms.take(2, track="host")
    e2e.tenant.apply(policy("watched", "guest", uuids))
    e2e.tenant.wait_ready("watched", timeout=READY_TIMEOUT)
    expected = 1

    def reconciled_once_more(what: str) -> None:
        nonlocal expected
        expected += 1
        wait_for(
            lambda: reconciles(e2e, "watched"),
            lambda done: done >= expected,
            timeout=READY_TIMEOUT,
            what=f"a reconcile after {what}",
        )
        quiet(f"after {what}")

    def quiet(what: str) -> None:
        holds_for(
            lambda: reconciles(e2e, "watched"),
            lambda done: done == expected,
            duration=QUIET_SECONDS,
            what=f"exactly {expected} reconciles {what}",
        )

    quiet("after the creation")
    e2e.tenant.merge_patch(POLICY, "watched", {"spec": {"track": "host"}})
    reconciled_once_more("a spec change")
    e2e.tenant.annotate(POLICY, "watched", PAUSED, "true")
    reconciled_once_more("the pause annotation")
    e2e.tenant.wait_policy(
        "watched",
        lambda p: condition_is(p, "Synced", "False", "ReconcilePaused"),
        timeout=READY_TIMEOUT,
        what="Synced=False/ReconcilePaused",
    )
    e2e.tenant.annotate(POLICY, "watched", PAUSED, None)
    reconciled_once_more("removing the pause annotation")
    token = f"poke-{time.time_ns()}"
    e2e.tenant.annotate(POLICY, "watched", RECONCILE_REQUESTED_AT, token)
    reconciled_once_more("the reconcile-requested-at annotation")
    assert e2e.tenant.policy("watched")["status"].get("lastHandledReconcileAt") == token

    e2e.tenant.annotate(POLICY, "watched", "argocd.argoproj.io/tracking-id", "app:ns/watched")
    e2e.kubectl("label", POLICY, "watched", "team=a", namespace=e2e.namespace)
    quiet("after other metadata changed")
    got = e2e.tenant.wait_ready("watched", timeout=READY_TIMEOUT)
    assert LAST_HANDLED not in got["metadata"].get("annotations", {})
    assert e2e.simulator.admin.tracks(uuids) == dict.fromkeys(uuids, "host")
