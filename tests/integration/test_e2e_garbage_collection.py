"""Kubernetes' own garbage collector removes what a deleted policy owned, with the operator not running.

A selector policy records previous tracks in ConfigMap ``vmclock-tracks-<policy>``, owned by the policy
(ownerReference to its uid). The operator deletes that record itself when it sees the policy go; when it
never sees that (it was down), the record must not be left behind: kube-controller-manager's garbage
collector, running in the test control plane, collects it. Real kube-apiserver, etcd and
kube-controller-manager, the simulator and the operator as processes.
"""

from __future__ import annotations

import secrets

from harness import POLICY, selector_policy, wait_for
from harness.e2e import CONNECTION_NAME, E2E, READY_TIMEOUT

WINDOWS = ["Windows", "WindowsVirtio"]

COLLECTED_TIMEOUT = 120.0
"""The garbage collector acts on a deletion within seconds once it watches the owner's kind; a kind it
learned of after its start (the CRD) is watched from its next discovery resync, every 30 s."""


def test_a_selector_policys_record_is_garbage_collected_after_the_policy_while_the_operator_is_down(
    e2e: E2E,
) -> None:
    e2e.connect()
    tag = f"gc-{secrets.token_hex(4)}"
    uuids = e2e.vms.take(2, track="host", where=lambda vm: vm.platform in WINDOWS)
    for uuid in uuids:
        e2e.simulator.admin.add_user_tag(uuid, tag)
    selector = {"platforms": WINDOWS, "userTags": [tag]}
    e2e.tenant.apply(selector_policy("recorded", "guest", selector, deletion="Orphan"))
    got = e2e.tenant.wait_ready("recorded", timeout=READY_TIMEOUT)
    record_name = "vmclock-tracks-recorded"
    record = e2e.tenant.find("configmap", record_name)
    assert record is not None, "the selector policy records its previous tracks in a ConfigMap"
    assert [owner["uid"] for owner in record["metadata"]["ownerReferences"]] == [got["metadata"]["uid"]]

    e2e.operator.stop()
    try:
        e2e.tenant.delete(POLICY, "recorded", timeout=READY_TIMEOUT)  # Orphan: no finalizer, gone at once
        wait_for(
            lambda: e2e.tenant.find("configmap", record_name),
            lambda found: found is None,
            timeout=COLLECTED_TIMEOUT,
            what=f"the garbage collector to delete {record_name} after its owner",
        )
        assert not e2e.operator.alive(), "the operator stayed down while the record went"
    finally:
        e2e.operator.start()

    assert e2e.simulator.admin.tracks(uuids) == dict.fromkeys(uuids, "guest"), "Orphan: VMs keep the track"
    e2e.tenant.delete("zstackconnection", CONNECTION_NAME, timeout=READY_TIMEOUT)
