"""A namespace that has not let the operator in (design.md §6.5), told as what its owner must create.

No shipped install grants Secret or ConfigMap access cluster-wide: a namespace opts in with a RoleBinding to
the ClusterRole `vmclock-tenant` (or by being in the tenants overlay's list). Until it does, reading a
connection's Secret or CA bundle there gets 403 from the API server. That is not a broken Secret nor an
operator fault, so it gets its own reason, and the message carries the exact command that fixes it; the
ServiceAccount in that command comes from the downward API (the shipped Deployment sets both variables).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from vmclock.connections.problems import NAMESPACE_NOT_ENABLED, ConnectionProblem

HTTP_FORBIDDEN = 403
TENANT_ROLE = "vmclock-tenant"
NAMESPACE_VARIABLE = "POD_NAMESPACE"
ACCOUNT_VARIABLE = "POD_SERVICE_ACCOUNT"


@dataclass(frozen=True)
class OperatorAccount:
    """The operator's ServiceAccount, as the RoleBinding's subject; placeholders when run outside a pod."""

    namespace: str = "<operator namespace>"
    name: str = "<operator ServiceAccount>"

    @classmethod
    def from_environment(cls, env: Mapping[str, str] = os.environ) -> OperatorAccount:
        defaults = cls()
        return cls(
            env.get(NAMESPACE_VARIABLE) or defaults.namespace, env.get(ACCOUNT_VARIABLE) or defaults.name
        )


def opt_in_command(namespace: str, account: OperatorAccount) -> str:
    return (
        f"kubectl create rolebinding {TENANT_ROLE} -n {namespace} --clusterrole={TENANT_ROLE} "
        f"--serviceaccount={account.namespace}:{account.name}"
    )


def namespace_not_enabled(namespace: str, account: OperatorAccount) -> ConnectionProblem:
    return ConnectionProblem(
        NAMESPACE_NOT_ENABLED,
        f"namespace {namespace} has not enabled vmclock: the operator may not read Secrets or ConfigMaps "
        f"there (403 from the Kubernetes API); the namespace's owner enables it with: "
        f"{opt_in_command(namespace, account)}",
    )
