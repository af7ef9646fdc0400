"""Red team of issue 14's fewer Kubernetes reads (connection specs from a kopf index; a never-reconciled
policy's records taken for absent until checked).

Each test names the scenario and the promise it breaks. The connection index is trusted whenever it holds one
entry under the name, so what the watch has not delivered yet (a spec change, a deletion, a re-created
namesake whose events are both still on the way) is acted on as if it were the API server's answer: the
reconcile writes through a connection the API server no longer has in that shape.

Same parts as test_kube_calls.py: the counting in-memory API, the simulator, the real controller.
"""

from __future__ import annotations

from typing import Any

from vmclock.engine.spec import CONNECTION_PLURAL

from . import test_kube_calls
from .test_controller import CONNECTION, DELETED_AT, Parts
from .test_kube_calls import reconciled, running_vms

sim = test_kube_calls.sim
parts = test_kube_calls.parts
no_event_posting = test_kube_calls.no_event_posting

ELSEWHERE = "http://127.0.0.1:9"  # another ZStack's endpoint: nothing listens there (discard port)


def api_connection(parts: Parts) -> dict[str, Any]:
    """The connection as the API server holds it; changing it here is a change whose watch event has not
    reached the index yet (the index keeps its own copy of what the watch last delivered)."""
    found: dict[str, Any] = parts.kube.objects[(CONNECTION_PLURAL, *CONNECTION)]
    return found


async def test_a_connection_re_created_with_another_endpoint_is_not_written_through_as_the_old_one(
    parts: Parts,
) -> None:
    """Scenario: the ZStackConnection is deleted and re-created under the same name pointing at another
    ZStack; the policy's reconcile runs before the old incarnation's DELETED and the new one's ADDED event
    reach the index, so the index holds one entry: the old incarnation. Promise broken: "a connection
    deleted and re-created under the same name (other endpoint) is never confused with the old one" (before
    issue 14 the reconcile's GET saw the new one). The reconcile writes the VMs of the OLD ZStack, which no
    connection names any more."""
    vms = running_vms(parts, "host", 2)
    ref = parts.policy("p", vms)
    parts.kube.objects[(CONNECTION_PLURAL, *CONNECTION)] = {
        "metadata": {"namespace": CONNECTION.namespace, "name": CONNECTION.name, "uid": "uid-c2"},
        "spec": {"endpoint": ELSEWHERE, "credentialsSecretRef": {"name": "creds"}},
    }
    await reconciled(parts, ref)
    assert parts.sim.stats.writes == [], "written through the deleted incarnation's endpoint"
    assert {u: parts.sim.state.track_of(u) for u in vms} == dict.fromkeys(vms, "host")


async def test_a_connection_spec_change_is_what_the_next_reconcile_uses(parts: Parts) -> None:
    """Scenario: the connection's endpoint is changed in the API server (moved to another ZStack) and a
    policy's reconcile (a resync, a trigger, a policy edit) runs before the MODIFIED event reaches the
    index. Promise broken: "a spec change of the connection (endpoint, account Secret,
    maxConcurrentRequests, CA) is what the next reconcile uses": it connects to the endpoint the connection
    no longer names, and writes there."""
    vms = running_vms(parts, "host", 2)
    ref = parts.policy("p", vms)
    api_connection(parts)["spec"] = {"endpoint": ELSEWHERE, "credentialsSecretRef": {"name": "creds"}}
    await reconciled(parts, ref)
    assert parts.sim.stats.writes == [], "written through the endpoint the connection no longer names"


async def test_a_connection_being_deleted_gives_not_found_to_a_forward_reconcile(parts: Parts) -> None:
    """Scenario: the connection is being deleted (deletionTimestamp set in the API server) and a forward
    reconcile runs before that MODIFIED event reaches the index. Promise broken: "a connection absent or
    being deleted gives 'not found' to a forward reconcile": the reconcile writes through it, and the
    policy's status says nothing of the connection going."""
    vms = running_vms(parts, "host", 2)
    ref = parts.policy("p", vms)
    api_connection(parts)["metadata"]["deletionTimestamp"] = DELETED_AT
    await reconciled(parts, ref)
    assert parts.sim.stats.writes == [], "written through a connection being deleted"
    assert parts.status(ref)["connection"]["reason"] == "NotFound"
