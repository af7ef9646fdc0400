"""deploy/overlays/tenants installed for real, and the operator run with nothing but what it grants.

``kubectl kustomize`` renders the overlay as a user adapts it (``tenants_copy``: their own operator namespace
and tenant list); everything rendered is applied, the ClusterRoles and the per-namespace RoleBindings
included, and the operator process authenticates with a token of the rendered ServiceAccount only. So a
verb the overlay does not grant fails in the operator exactly as it would in the cluster. The tenant
namespaces exist before the install, as the overlay requires; tests then take them one by one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from controlplane import Kubectl
from deploy.kustomize import (
    OPERATOR,
    Obj,
    apply_prerequisites,
    one,
    operator_container,
    parse_objects,
    tenants_copy,
)
from deploy.serviceaccount import OperatorLogin, RenderedOperatorProcess, mint_token, write_token_kubeconfig


class NoTenantLeft(LookupError):
    """Every namespace the overlay was rendered for is taken."""


@dataclass
class TenantsInstall:
    """The applied render, the ServiceAccount's login, and the tenant namespaces not yet taken."""

    objects: list[Obj]
    login: OperatorLogin
    tenants: tuple[str, ...]
    _taken: int = field(default=0, init=False)
    _retired: set[str] = field(default_factory=set, init=False)

    @property
    def serving(self) -> set[str]:
        """The tenant namespaces not yet deleted: where the operator must never be refused. A deleted one may
        lose its RoleBindings before its policies go, and the operator then says NamespaceNotEnabled."""
        return set(self.tenants) - self._retired

    def retire(self, namespace: str) -> None:
        """The test deleted `namespace`."""
        self._retired.add(namespace)

    def take(self) -> str:
        """The next served namespace (it exists and has the overlay's RoleBindings)."""
        if self._taken == len(self.tenants):
            raise NoTenantLeft(
                f"the tenants overlay was rendered for {len(self.tenants)} namespaces and all are taken; "
                "render it for more"
            )
        self._taken += 1
        return self.tenants[self._taken - 1]

    def operator(self, *, log_path: Path, pod_name: str) -> RenderedOperatorProcess:
        """The rendered Deployment's container, run as the ServiceAccount with only its token."""
        account = self.login.account["metadata"]
        return RenderedOperatorProcess(
            log_path=log_path,
            kubeconfig=self.login.kubeconfig,
            pod_name=pod_name,
            container=operator_container(self.objects),
            pod_namespace=account["namespace"],
            service_account=account["name"],
        )


def install_tenants(
    admin: Kubectl, workdir: Path, *, namespace: str, tenants: tuple[str, ...]
) -> TenantsInstall:
    """Render the overlay for ``tenants`` with the operator in ``namespace``, create the tenant namespaces
    (the overlay does not), apply the whole render and log in as its ServiceAccount."""
    overlay = tenants_copy(workdir / "copy", namespace=namespace, tenants=tenants)
    objects = parse_objects(admin("kustomize", str(overlay)).stdout)
    apply_prerequisites(admin, objects)
    admin.apply(objects, server_side=True)
    account = one(objects, "ServiceAccount", OPERATOR)
    token = mint_token(admin, account)
    kubeconfig = write_token_kubeconfig(admin.kubeconfig, token, workdir / "kubeconfig")
    return TenantsInstall(objects, OperatorLogin(account, token, kubeconfig), tenants)
