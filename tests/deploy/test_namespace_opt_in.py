"""design.md §6.5, with the real operator as its real ServiceAccount against the real API server: the
cluster-wide install watches every namespace but reads a Secret only where the namespace opted in.

A namespace without the RoleBinding gets ``NamespaceNotEnabled`` on its ZStackConnection, with the exact
command its owner runs; nothing is sent to ZStack because no Secret read succeeded. Running that very command
makes the connection Ready and the policy converge. ``kube-system`` stays unreadable.
"""

from __future__ import annotations

import secrets
import shlex

from controlplane import Kubectl
from deploy.serviceaccount import TENANT_ROLE, OperatorLogin
from harness import (
    CONNECTION,
    SimulatorProcess,
    Tenant,
    account_secret,
    condition,
    condition_is,
    connection,
    phases,
    policy,
    wait_for,
)
from harness.e2e import CONNECTION_NAME, E2E, READY_TIMEOUT, SECRET_NAME

NAME = "opt-in"
NOT_ENABLED = "NamespaceNotEnabled"
COMMAND_PREFIX = "enables it with: "
# The connection re-checks a broken connection with backoff capped at a minute (kopfapp/connections.py).
RECHECK_CAP_SECONDS = 60.0


def wait_not_enabled(tenant: Tenant) -> dict[str, object]:
    return wait_for(
        lambda: tenant.get(CONNECTION, CONNECTION_NAME),
        lambda conn: condition_is(conn, "Ready", "False", NOT_ENABLED),
        timeout=READY_TIMEOUT,
        what=f"Ready=False/{NOT_ENABLED} on ZStackConnection {tenant.namespace}/{CONNECTION_NAME}",
    )


def told_command(conn: dict[str, object]) -> list[str]:
    message = str(condition(conn, "Ready")["message"])
    assert COMMAND_PREFIX in message, message
    return shlex.split(message.rsplit(COMMAND_PREFIX, 1)[1])


def expected_command(namespace: str, login: OperatorLogin) -> list[str]:
    account = login.account["metadata"]
    return [
        "kubectl",
        "create",
        "rolebinding",
        TENANT_ROLE,
        "-n",
        namespace,
        f"--clusterrole={TENANT_ROLE}",
        f"--serviceaccount={account['namespace']}:{account['name']}",
    ]


def may_read_secrets(admin: Kubectl, login: OperatorLogin, namespace: str) -> bool:
    result = admin(
        "auth", "can-i", "get", "secrets", f"--as={login.user}", "--namespace", namespace, check=False
    )
    return result.stdout.strip() == "yes"


def zstack_calls(simulator: SimulatorProcess) -> dict[str, int]:
    return {api: count for api, count in simulator.admin.stats().calls.items() if count}


def test_a_namespace_without_the_rolebinding_is_told_what_to_create_and_then_works(
    e2e: E2E, login: OperatorLogin, kubectl: Kubectl
) -> None:
    namespace = e2e.namespace
    e2e.connect()
    vms = e2e.vms.take(2, track="host")
    e2e.tenant.apply(policy(NAME, "guest", vms))

    conn = wait_not_enabled(e2e.tenant)
    command = told_command(conn)
    assert command == expected_command(namespace, login)
    got = e2e.tenant.wait_policy(
        NAME,
        lambda p: (p.get("status") or {}).get("connection", {}).get("reason") == NOT_ENABLED,
        timeout=READY_TIMEOUT,
        what=f"status.connection.reason {NOT_ENABLED}",
    )
    assert condition_is(got, "Ready", "False", "ConnectionNotReady"), condition(got, "Ready")
    # No Secret read succeeded: the ServiceAccount may not, and not one request reached ZStack.
    assert not may_read_secrets(kubectl, login, namespace)
    assert zstack_calls(e2e.simulator) == {}
    assert e2e.simulator.admin.tracks(vms) == dict.fromkeys(vms, "host")

    kubectl(*command[1:])  # the namespace's owner runs what the condition says

    assert may_read_secrets(kubectl, login, namespace)
    wait_for(
        lambda: e2e.tenant.get(CONNECTION, CONNECTION_NAME),
        lambda conn: condition_is(conn, "Ready", "True", "Connected"),
        timeout=RECHECK_CAP_SECONDS + READY_TIMEOUT,
        what="the connection Ready once the namespace opted in",
    )
    e2e.tenant.wait_policy(
        NAME,
        lambda p: phases(p) == dict.fromkeys(vms, "Applied"),
        timeout=READY_TIMEOUT,
        what="every VM Applied",
    )
    assert e2e.simulator.admin.tracks(vms) == dict.fromkeys(vms, "guest")
    log = e2e.operator.log_text()
    assert e2e.credentials.leaks_in(log) == []


def test_kube_system_stays_unreadable(e2e: E2E, login: OperatorLogin, kubectl: Kubectl) -> None:
    """A connection in kube-system naming a Secret there: the operator sees it and says why it cannot help."""
    system = Tenant(kubectl, "kube-system")
    suffix = secrets.token_hex(3)
    secret_name, connection_name = f"{SECRET_NAME}-{suffix}", f"vmclock-probe-{suffix}"
    system.apply(
        account_secret(
            secret_name, e2e.credentials.account, e2e.credentials.password, allow=e2e.simulator.endpoint
        ),
        connection(connection_name, e2e.simulator.endpoint, secret_name),
    )
    try:
        conn = wait_for(
            lambda: system.get(CONNECTION, connection_name),
            lambda found: condition_is(found, "Ready", "False", NOT_ENABLED),
            timeout=READY_TIMEOUT,
            what=f"Ready=False/{NOT_ENABLED} in kube-system",
        )
        assert told_command(conn) == expected_command("kube-system", login)
        assert not may_read_secrets(kubectl, login, "kube-system")
        assert zstack_calls(e2e.simulator) == {}
    finally:
        system.delete(CONNECTION, connection_name, timeout=READY_TIMEOUT)  # the operator drops its finalizer
        kubectl("delete", "secret", secret_name, namespace="kube-system")
