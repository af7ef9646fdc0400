"""`vmclock plan` of a selector `Restore` policy larger than its status list.

`status.vms` of a selector policy lists at most 500 VMs; the previous tracks of the others live only in the
policy's record ConfigMap (`vmclock-tracks-<policy>`). A plan that releases them all must put every one back,
so it has to read the record as the operator does. The module's own simulator is big enough for that.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane import ControlPlane
from harness import SimulatorProcess
from harness.credentials import RunCredentials
from harness.e2e import E2E, module_simulator
from harness.plan import plan_in_cluster, selector_policy
from vmclock.engine.report import MAX_LISTED

SIMULATED_VMS = 1500
CHANGED = MAX_LISTED + 40
APPLY_TIMEOUT = 300.0
EXIT_CHANGES = 2


@pytest.fixture(scope="module")
def simulator(
    tmp_path_factory: pytest.TempPathFactory, credentials: RunCredentials
) -> Iterator[SimulatorProcess]:
    """This module's own, with more VMs than a selector policy's status lists."""
    with module_simulator(tmp_path_factory.mktemp("simulator"), credentials, vms=SIMULATED_VMS) as sim:
        yield sim


def test_released_vms_beyond_the_status_list_are_put_back_from_the_record(
    e2e: E2E, controlplane: ControlPlane, tmp_path: Path
) -> None:
    e2e.connect()
    tag = f"plan-{secrets.token_hex(4)}"
    uuids = e2e.vms.take(CHANGED, track="host")
    for uuid in uuids:
        e2e.simulator.admin.add_user_tag(uuid, tag)
    e2e.tenant.apply(selector_policy("tagged", "guest", {"userTags": [tag]}, deletionPolicy="Restore"))
    applied = e2e.tenant.wait_ready("tagged", timeout=APPLY_TIMEOUT)
    assert applied["status"]["selector"]["omitted"] == CHANGED - MAX_LISTED  # the premise: some are unlisted
    nothing = {"userTags": [tag], "namePattern": "no-such-vm-*"}
    releasing = selector_policy("tagged", "guest", nothing, deletionPolicy="Restore")

    result = plan_in_cluster(
        controlplane.kubeconfig, e2e.namespace, tmp_path, [releasing], "--against-cluster"
    )

    assert result.code == EXIT_CHANGES, result.stderr
    assert result.actions("tagged") == dict.fromkeys(uuids, "restore")
    assert {vm["targetTrack"] for vm in result.policy("tagged")["vms"]} == {"host"}
    assert result.policy("tagged")["againstCluster"]["released"] == sorted(uuids)
    assert result.document()["changes"] == CHANGED
