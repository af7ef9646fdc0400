"""The shipped RBAC is enough, and the image's install steps produce an operator that runs.

The operator is started from the venv the Dockerfile's steps built (``replayed_image``), with the rendered
Deployment's arguments and environment, and it authenticates with a token of the ``vmclock-operator``
ServiceAccount that ``deploy/`` created and bound; the test's namespace opts in as its owner would (a
RoleBinding to ``vmclock-tenant``).  The whole reconcile scenario (apply, unknown VM, drift,
pause, resume, Restore on deletion) then runs with the user's objects written as admin; any verb the
ClusterRole lacks would surface as a 403 in the operator's log or as a step that never completes.
"""

from __future__ import annotations

import secrets
import time

from controlplane import Kubectl
from deploy.serviceaccount import POD_NAME, OperatorLogin, enable_namespace, refusals
from harness import (
    GROUP,
    PAUSED,
    POLICY,
    Tenant,
    account_secret,
    condition,
    condition_is,
    phases,
    policy,
    vm_entries,
    wait_for,
)
from harness.credentials import RunCredentials
from harness.e2e import CONNECTION_NAME, E2E, READY_TIMEOUT, SECRET_NAME

NAME = "as-operator"
RESYNC_SECONDS = 10  # the smallest resyncIntervalSeconds the CRD accepts


def operator_events(e2e: E2E) -> list[str]:
    """Reasons of the Events on the policy that this operator process posted (kopf's reporting fields)."""
    return [
        event["reason"]
        for event in e2e.tenant.events(NAME)
        if (event.get("reportingComponent"), event.get("reportingInstance")) == ("vmclock", POD_NAME)
    ]


def test_full_reconcile_scenario_passes_with_only_the_serviceaccount_rbac(
    e2e: E2E, login: OperatorLogin, kubectl: Kubectl
) -> None:
    enable_namespace(kubectl, e2e.namespace, login.account)
    e2e.connect()
    changed = e2e.vms.take(3, track="host")
    missing = e2e.vms.unknown_uuid()
    e2e.tenant.apply(
        policy(NAME, "guest", [*changed, missing], deletion="Restore", resync_seconds=RESYNC_SECONDS)
    )
    expected = {**dict.fromkeys(changed, "Applied"), missing: "NotFound"}

    apply_unknown_and_known_vms(e2e, changed, expected)
    correct_drift(e2e, changed[1])
    pause_and_resume(e2e, expected)
    e2e.tenant.delete(POLICY, NAME, timeout=READY_TIMEOUT)

    assert e2e.tenant.find(POLICY, NAME) is None
    assert e2e.simulator.admin.tracks(changed) == dict.fromkeys(changed, "host")
    reasons = wait_for(
        lambda: operator_events(e2e),
        lambda seen: {"Applied", "DriftCorrected", "Paused", "Resumed", "Restored"} <= set(seen),
        timeout=READY_TIMEOUT,
        what="every transition's Event posted by the operator",
    )
    assert "ApiError" not in reasons
    operator = e2e.operator
    assert operator.alive(), f"the operator died; log {operator.log_path}:\n{operator.log_tail()}"
    log = operator.log_text()
    assert NAME in log  # the scan below reads the operator's real output, not an empty file
    assert refusals(log, enabled=[e2e.namespace]) == []
    leaks = e2e.credentials.leaks_in(log)
    assert leaks == [], f"operator log {operator.log_path} contains: {', '.join(leaks)}"
    assert login.token not in log, f"operator log {operator.log_path} contains its ServiceAccount token"


def apply_unknown_and_known_vms(e2e: E2E, changed: list[str], expected: dict[str, str]) -> None:
    """Connected, the known VMs written and Applied, the unknown one NotFound, a finalizer for Restore."""
    got = e2e.tenant.wait_policy(
        NAME,
        lambda p: phases(p) == expected and condition_is(p, "Ready", "False", "VmNotFound"),
        timeout=READY_TIMEOUT,
        what=f"phases {expected} and Ready=False/VmNotFound",
    )
    conn = e2e.tenant.connection(CONNECTION_NAME)
    assert condition_is(conn, "Ready", "True", "Connected"), conn.get("status")
    assert condition_is(got, "Synced", "True", "ReconcileSuccess"), condition(got, "Synced")
    assert {u: vm_entries(got)[u].get("previousTrack") for u in changed} == dict.fromkeys(changed, "host")
    assert any(f.startswith(f"{GROUP}/") for f in got["metadata"].get("finalizers", [])), got["metadata"]
    assert e2e.simulator.admin.tracks(changed) == dict.fromkeys(changed, "guest")
    writes = e2e.simulator.admin.stats().writes_for(changed)
    assert sorted((w.uuid, w.track) for w in writes) == sorted((u, "guest") for u in changed)
    wait_for(
        lambda: operator_events(e2e),
        lambda reasons: "Applied" in reasons,
        timeout=READY_TIMEOUT,
        what="an Applied Event posted by the operator",
    )


def correct_drift(e2e: E2E, drifted: str) -> None:
    """A track changed behind the operator's back is written back by the next resync, and only once."""
    injected = time.time()
    e2e.simulator.admin.set_track(drifted, "host")
    wait_for(
        lambda: e2e.simulator.admin.tracks([drifted]),
        lambda tracks: tracks == {drifted: "guest"},
        timeout=RESYNC_SECONDS + READY_TIMEOUT,
        what="the drifted VM to be put back on its desired track",
    )
    corrections = [w for w in e2e.simulator.admin.stats().writes_for([drifted]) if w.at >= injected]
    assert [w.track for w in corrections] == ["guest"]
    wait_for(
        lambda: operator_events(e2e),
        lambda reasons: "DriftCorrected" in reasons,
        timeout=READY_TIMEOUT,
        what="a DriftCorrected Event posted by the operator",
    )


def pause_and_resume(e2e: E2E, expected: dict[str, str]) -> None:
    e2e.tenant.annotate(POLICY, NAME, PAUSED, "true")
    e2e.tenant.wait_policy(
        NAME,
        lambda p: condition_is(p, "Synced", "False", "ReconcilePaused"),
        timeout=READY_TIMEOUT,
        what="Synced=False/ReconcilePaused",
    )
    e2e.tenant.annotate(POLICY, NAME, PAUSED, None)
    got = e2e.tenant.wait_policy(
        NAME,
        lambda p: condition_is(p, "Synced", "True", "ReconcileSuccess"),
        timeout=READY_TIMEOUT,
        what="Synced=True/ReconcileSuccess after resuming",
    )
    assert phases(got) == expected


def test_serviceaccount_cannot_list_secrets_or_delete_policies(
    as_operator: Kubectl, login: OperatorLogin, credentials: RunCredentials, kubectl: Kubectl, namespace: str
) -> None:
    enable_namespace(kubectl, namespace, login.account)
    tenant = Tenant(kubectl, namespace)
    tenant.apply(
        account_secret(
            SECRET_NAME, credentials.account, credentials.password, allow="https://zstack.invalid"
        ),
        policy("kept", "guest", [secrets.token_hex(16)]),
    )
    # The token authenticates as the ServiceAccount, and what the operator needs is allowed.
    whoami = as_operator("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
    assert whoami.stdout == login.user
    got = as_operator("get", "secret", SECRET_NAME, "-o", "name", namespace=namespace)
    assert got.stdout.strip() == f"secret/{SECRET_NAME}"

    refused = {
        ("get", "secrets", "--all-namespaces"): (
            'cannot list resource "secrets" in API group "" at the cluster scope'
        ),
        ("get", "secrets", "--namespace", namespace): (
            f'cannot list resource "secrets" in API group "" in the namespace "{namespace}"'
        ),
        ("delete", POLICY, "kept", "--namespace", namespace): (
            f'cannot delete resource "vmclockpolicies" in API group "{GROUP}" in the namespace "{namespace}"'
        ),
    }
    outcomes = {}
    for args, refusal in refused.items():
        result = as_operator(*args, check=False)
        denied = result.returncode != 0 and f'User "{login.user}" {refusal}' in result.stderr
        outcomes[" ".join(args)] = "forbidden" if denied else f"exit {result.returncode}: {result.stderr}"
    assert outcomes == dict.fromkeys(outcomes, "forbidden")
    kept = tenant.find(POLICY, "kept")
    assert kept is not None
    assert "deletionTimestamp" not in kept["metadata"]
