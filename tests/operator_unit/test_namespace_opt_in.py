"""A namespace that has not opted in (no RoleBinding to vmclock-tenant) gets NamespaceNotEnabled with the
command that enables it; other API errors stay errors. The API server's 403 is played by an in-memory reader
(the real 403 from the real API server is in tests/deploy/test_namespace_opt_in.py)."""

from __future__ import annotations

import shlex

import pytest

from vmclock.connections import ConnectionManager
from vmclock.connections.optin import OperatorAccount
from vmclock.kubeapi import KubeApiError, KubeObject

ACCOUNT = OperatorAccount("vmclock-system", "vmclock-operator")
SPEC = {"endpoint": "https://zstack.example", "credentialsSecretRef": {"name": "creds"}}


class Refusing:
    """Answers every read with one Kubernetes API status, as the API server does for a missing grant."""

    def __init__(self, status: int) -> None:
        self.status = status

    async def read_secret(self, namespace: str, name: str) -> KubeObject | None:
        raise KubeApiError(self.status, "Forbidden", f"Secret {namespace}/{name}")

    async def read_config_map(self, namespace: str, name: str) -> KubeObject | None:
        raise KubeApiError(self.status, "Forbidden", f"ConfigMap {namespace}/{name}")


async def test_a_forbidden_secret_read_names_the_rolebinding_to_create() -> None:
    manager = ConnectionManager(Refusing(403), account=ACCOUNT)
    verdict = await manager.check("team-a", "zs", SPEC)
    assert verdict.reason == "NamespaceNotEnabled"
    assert not verdict.ready
    command = verdict.message.rsplit("enables it with: ", 1)[1]
    assert shlex.split(command) == [
        "kubectl",
        "create",
        "rolebinding",
        "vmclock-tenant",
        "-n",
        "team-a",
        "--clusterrole=vmclock-tenant",
        "--serviceaccount=vmclock-system:vmclock-operator",
    ]


async def test_other_api_errors_are_not_taken_for_a_missing_opt_in() -> None:
    manager = ConnectionManager(Refusing(500), account=ACCOUNT)
    with pytest.raises(KubeApiError):
        await manager.check("team-a", "zs", SPEC)


def test_the_account_comes_from_the_downward_api_variables() -> None:
    env = {"POD_NAMESPACE": "ops", "POD_SERVICE_ACCOUNT": "vmclock"}
    assert OperatorAccount.from_environment(env) == OperatorAccount("ops", "vmclock")
    assert OperatorAccount.from_environment({}) == OperatorAccount()
