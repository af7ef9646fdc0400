"""`vmclock plan` against a real cluster (kube-apiserver + etcd) where the operator runs, and the simulator.

The policies already in the cluster are applied and reconciled by the operator process, so what the plan
compares against is what the operator really recorded (status, previous tracks, connection readiness).
The plan reaches ZStack through the cluster's ZStackConnection and its Secret with the test's kubeconfig,
as a user would; it must never write (the simulator's write log is checked for the plan's VMs).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from controlplane import ControlPlane, Kubectl
from deploy.serviceaccount import mint_token, write_token_kubeconfig
from harness import SimVm, Tenant, connection, policy
from harness.e2e import E2E, READY_TIMEOUT
from harness.objects import ALLOWED_ENDPOINTS
from harness.plan import PlanRun, plan_in_cluster, run_plan, selector_policy, write_manifests

EXIT_ERROR, EXIT_CHANGES = 1, 2
WINDOWS = ("Windows", "WindowsVirtio")


def _windows(vm: SimVm) -> bool:
    return vm.platform in WINDOWS


def plan(
    e2e: E2E, controlplane: ControlPlane, tmp_path: Path, manifests: Sequence[dict[str, Any]], *flags: str
) -> PlanRun:
    return plan_in_cluster(controlplane.kubeconfig, e2e.namespace, tmp_path, manifests, *flags)


def writes_since(e2e: E2E, since: float, uuids: Sequence[str]) -> list[Any]:
    return [w for w in e2e.simulator.admin.stats().writes_for(uuids) if w.at >= since]


def test_policies_in_the_cluster_own_their_vms_by_the_operators_rules(
    e2e: E2E, controlplane: ControlPlane, tmp_path: Path
) -> None:
    """An older UUID policy beats a newcomer of either kind; an older selector policy beats a newer one."""
    e2e.connect()
    named, by_name = e2e.vms.take(2, track="host", where=_windows)
    (fresh,) = e2e.vms.take(1, track="guest", where=_windows)
    selected = e2e.vms.by_uuid(by_name)
    e2e.tenant.apply(
        policy("owner", "guest", [named]),
        selector_policy("older-selector", "guest", {"namePattern": selected.name}),
    )
    e2e.tenant.wait_ready("owner", timeout=READY_TIMEOUT)
    e2e.tenant.wait_ready("older-selector", timeout=READY_TIMEOUT)
    named_by_pattern = e2e.vms.by_uuid(named).name

    started = time.time()
    result = plan(
        e2e,
        controlplane,
        tmp_path,
        [
            policy("newcomer", "host", [named, fresh]),
            selector_policy("new-selector", "host", {"namePattern": selected.name}),
            selector_policy("new-selector-named", "host", {"namePattern": named_by_pattern}),
        ],
    )

    assert result.code == EXIT_CHANGES, result.output
    assert result.actions("newcomer") == {named: "ownedElsewhere", fresh: "change"}
    assert result.actions("new-selector") == {by_name: "ownedElsewhere"}
    assert result.actions("new-selector-named") == {named: "ownedElsewhere"}
    owners = {
        name: {vm["uuid"]: (vm.get("owner"), vm.get("ownerTrack")) for vm in result.policy(name)["vms"]}
        for name in ("newcomer", "new-selector", "new-selector-named")
    }
    assert owners["newcomer"][named] == (f"{e2e.namespace}/owner", "guest")
    assert owners["new-selector"][by_name] == (f"{e2e.namespace}/older-selector", "guest")
    assert owners["new-selector-named"][named] == (f"{e2e.namespace}/owner", "guest")
    assert writes_since(e2e, started, [named, by_name, fresh]) == []
    assert e2e.credentials.leaks_in(result.output) == []


def test_an_owner_in_another_namespace_stays_anonymous(
    e2e: E2E, controlplane: ControlPlane, kubectl: Kubectl, tmp_path: Path
) -> None:
    """Design §6.4: another tenant's policy on the same management node owns the VM but is not named."""
    other = Tenant(kubectl, f"{e2e.namespace[:50]}-other")
    kubectl("create", "namespace", other.namespace)
    try:
        secret = e2e.account_secret()
        other.apply(secret, connection("default", e2e.simulator.endpoint, secret["metadata"]["name"]))
        (owned,) = e2e.vms.take(1, track="host", where=_windows)
        other.apply(policy("theirs", "guest", [owned]))
        other.wait_ready("theirs", timeout=READY_TIMEOUT)
        e2e.connect()

        result = plan(e2e, controlplane, tmp_path, [policy("mine", "host", [owned])])
    finally:
        kubectl("delete", "namespace", other.namespace, "--wait=false")

    assert result.code == 0, result.output
    (vm,) = result.policy("mine")["vms"]
    assert (vm["action"], vm["owner"], vm["ownerTrack"]) == (
        "ownedElsewhere",
        "a policy in another namespace",
        "guest",
    )
    assert other.namespace not in result.output


def test_against_the_cluster_an_edit_shows_what_it_adds_releases_and_restores(
    e2e: E2E, controlplane: ControlPlane, tmp_path: Path
) -> None:
    e2e.connect()
    kept, dropped, added = e2e.vms.take(3, track="host", where=_windows)
    e2e.tenant.apply(policy("restoring", "guest", [kept, dropped], deletion="Restore"))
    e2e.tenant.wait_ready("restoring", timeout=READY_TIMEOUT)

    started = time.time()
    edited = policy("restoring", "guest", [kept, added], deletion="Restore")
    result = plan(e2e, controlplane, tmp_path, [edited], "--against-cluster")

    assert result.code == EXIT_CHANGES, result.output
    assert result.actions("restoring") == {kept: "inSync", added: "change", dropped: "restore"}
    restore = next(vm for vm in result.policy("restoring")["vms"] if vm["uuid"] == dropped)
    assert (restore["currentTrack"], restore["targetTrack"]) == ("guest", "host")
    assert result.policy("restoring")["againstCluster"] == {
        "exists": True,
        "trackBefore": "guest",
        "added": [added],
        "released": [dropped],
    }
    assert writes_since(e2e, started, [kept, dropped, added]) == []


def test_a_pr_that_edits_a_selector_shows_what_it_adds_releases_and_puts_back(
    e2e: E2E, controlplane: ControlPlane, tmp_path: Path
) -> None:
    """A selector Restore policy keeps previous tracks in its record ConfigMap: the plan reads it there."""
    e2e.connect()
    before_uuid, after_uuid = e2e.vms.take(2, track="host", where=_windows)
    before, after = e2e.vms.by_uuid(before_uuid), e2e.vms.by_uuid(after_uuid)
    applied = selector_policy("by-name", "guest", {"namePattern": before.name}, deletionPolicy="Restore")
    e2e.tenant.apply(applied)
    e2e.tenant.wait_ready("by-name", timeout=READY_TIMEOUT)
    edited = selector_policy("by-name", "guest", {"namePattern": after.name}, deletionPolicy="Restore")

    started = time.time()
    as_json = plan(e2e, controlplane, tmp_path, [edited], "--against-cluster")
    as_table = plan(e2e, controlplane, tmp_path, [edited], "--against-cluster", "-o", "table")

    assert (as_json.code, as_table.code) == (EXIT_CHANGES, EXIT_CHANGES), as_json.output
    assert as_json.actions("by-name") == {after_uuid: "change", before_uuid: "restore"}
    restore = next(vm for vm in as_json.policy("by-name")["vms"] if vm["uuid"] == before_uuid)
    assert (restore["currentTrack"], restore["targetTrack"]) == ("guest", "host")
    assert as_json.policy("by-name")["againstCluster"] == {
        "exists": True,
        "trackBefore": "guest",
        "added": [after_uuid],
        "released": [before_uuid],
    }
    assert f"    + {after_uuid}" in as_table.stdout
    assert f"    - {before_uuid}" in as_table.stdout
    assert "Plan: 2 VM writes for 1 policy." in as_table.stdout
    assert writes_since(e2e, started, [before_uuid, after_uuid]) == []


def test_a_plan_is_refused_where_the_operator_is_refused(
    e2e: E2E, controlplane: ControlPlane, tmp_path: Path
) -> None:
    """The Secret allows its credentials elsewhere: the plan sends nothing and says how to allow it."""
    secret = e2e.account_secret()
    secret["metadata"]["annotations"][ALLOWED_ENDPOINTS] = "https://zstack.example:8080"
    e2e.tenant.apply(secret)
    e2e.connect(with_secret=False)
    (uuid,) = e2e.vms.take(1)

    result = plan(e2e, controlplane, tmp_path, [policy("p", "guest", [uuid])])

    assert result.code == EXIT_ERROR
    assert "EndpointNotAllowed" in result.stderr
    assert "vmclock.zstack.io/allowed-endpoints" in result.stderr, "says how the Secret's owner allows it"
    assert e2e.credentials.leaks_in(result.output) == []


def test_a_user_who_may_read_only_their_namespace_gets_a_plan_and_a_note_saying_so(
    e2e: E2E, controlplane: ControlPlane, kubectl: Kubectl, tmp_path: Path
) -> None:
    """Cluster-wide lists are forbidden (403): the plan lists the manifest's namespace and says so."""
    e2e.connect()
    (owned,) = e2e.vms.take(1, track="host", where=_windows)
    (fresh,) = e2e.vms.take(1, track="guest", where=_windows)
    e2e.tenant.apply(policy("owner", "guest", [owned]))
    e2e.tenant.wait_ready("owner", timeout=READY_TIMEOUT)
    kubeconfig = tenant_kubeconfig(kubectl, controlplane, e2e.namespace, tmp_path / "tenant.kubeconfig")
    path = write_manifests(tmp_path / "policies.yaml", [policy("newcomer", "host", [owned, fresh])])
    args = ["-f", str(path), "-n", e2e.namespace, "--allow-insecure-endpoints", "-o", "json"]

    result = run_plan(args, env={"KUBECONFIG": str(kubeconfig)})

    assert result.code == EXIT_CHANGES, result.output
    assert result.actions("newcomer") == {owned: "ownedElsewhere", fresh: "change"}
    assert result.document()["notes"] == [
        "you may not list VmClockPolicies and ZStackConnections in all namespaces: ownership was checked "
        f"against the policies of {e2e.namespace} only"
    ]


def tenant_kubeconfig(admin: Kubectl, controlplane: ControlPlane, namespace: str, path: Path) -> Path:
    """A ServiceAccount that may read policies, connections, Secrets and ConfigMaps of `namespace` only."""
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "planner"}}
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "planner"},
        "rules": [
            {
                "apiGroups": ["vmclock.zstack.io"],
                "resources": ["vmclockpolicies", "zstackconnections"],
                "verbs": ["get", "list"],
            },
            {"apiGroups": [""], "resources": ["secrets", "configmaps"], "verbs": ["get"]},
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "planner"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "planner"},
        "subjects": [{"kind": "ServiceAccount", "name": "planner", "namespace": namespace}],
    }
    admin.apply([account, role, binding], namespace=namespace)
    account["metadata"]["namespace"] = namespace
    return write_token_kubeconfig(controlplane.kubeconfig, mint_token(admin, account), path)
