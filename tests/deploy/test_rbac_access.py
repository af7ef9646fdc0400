"""The operator's RBAC, applied for real and queried with ``kubectl auth can-i --as=<its ServiceAccount>``.

Every verb the operator (kopf included) uses must be allowed and nothing beyond it. RBAC cannot tell a
patch of ``spec`` from a patch of ``metadata``: kopf needs ``patch`` on the objects for its finalizer and
annotations, so "never edits spec" is the operator's promise, not something RBAC enforces; ``update``
(a full replace) is denied.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from controlplane import Kubectl
from deploy.kustomize import OPERATOR, Obj, Render, apply_prerequisites, tenants_copy, user_copy
from deploy.serviceaccount import enable_namespace

POLICIES = "vmclockpolicies.vmclock.zstack.io"
CONNECTIONS = "zstackconnections.vmclock.zstack.io"
CRDS = "customresourcedefinitions.apiextensions.k8s.io"
EVERYWHERE = "*"  # cluster-wide: list/watch across all namespaces, or a cluster-scoped resource
HOME = "@home"  # the namespace whose objects the operator serves
ELSEWHERE = "@elsewhere"  # a namespace a namespaced install must not reach
OPERATOR_HOME = "@operator"  # where the operator runs, when that is not a namespace it serves (tenants)
CLUSTER_PEERINGS = "clusterkopfpeerings.kopf.dev"
PEERINGS = "kopfpeerings.kopf.dev"


class Access(NamedTuple):
    verb: str
    resource: str
    where: str
    subresource: str = ""


# What the RoleBinding to vmclock-tenant grants in a namespace that opted in (design.md §6.5).
TENANT_ACCESS = [
    Access("get", "secrets", HOME),
    Access("get", "configmaps", HOME),
    *(Access(verb, "configmaps", HOME) for verb in ("create", "update", "delete")),  # selector records
]
OWN_KINDS_AT_HOME = [
    *(
        Access(verb, kind, HOME)
        for kind in (POLICIES, CONNECTIONS)
        for verb in ("get", "list", "watch", "patch")
    ),
    *(Access("patch", kind, HOME, "status") for kind in (POLICIES, CONNECTIONS)),
    *TENANT_ACCESS,
    Access("create", "events", HOME),
    Access("list", CRDS, EVERYWHERE),
    Access("watch", CRDS, EVERYWHERE),
]
NEVER = [
    *(Access(verb, "secrets", HOME) for verb in ("list", "watch", "create", "update", "patch", "delete")),
    Access("watch", "secrets", EVERYWHERE),
    *(Access(verb, "configmaps", HOME) for verb in ("list", "watch", "patch", "deletecollection")),
    *(
        Access(verb, kind, HOME)
        for kind in (POLICIES, CONNECTIONS)
        for verb in ("create", "update", "delete")
    ),
    Access("deletecollection", POLICIES, HOME),
    Access("update", POLICIES, HOME, "status"),
    Access("get", CONNECTIONS, HOME, "status"),  # status is read with the object
    Access("patch", "events", HOME),
    Access("create", "events.events.k8s.io", HOME),
    Access("get", "pods", HOME),
    Access("create", "serviceaccounts", HOME, "token"),
    Access("impersonate", "serviceaccounts", HOME),
    Access("create", CRDS, EVERYWHERE),
    Access("patch", CRDS, EVERYWHERE),
    Access("list", CLUSTER_PEERINGS, EVERYWHERE),  # only with components/peering
]
WATCH_NAMESPACES = [Access("list", "namespaces", EVERYWHERE), Access("watch", "namespaces", EVERYWHERE)]
# Secrets and ConfigMaps in a namespace that did not opt in, and cluster-wide.
OUTSIDE_TENANT_ACCESS = [
    Access("get", "secrets", ELSEWHERE),
    Access("get", "configmaps", ELSEWHERE),
    Access("create", "configmaps", ELSEWHERE),
    Access("delete", "configmaps", ELSEWHERE),
    Access("get", "secrets", EVERYWHERE),
    Access("create", "configmaps", EVERYWHERE),
]
# What an install that serves some namespaces must not do in any other.
OUTSIDE = [
    *OUTSIDE_TENANT_ACCESS,
    Access("get", POLICIES, ELSEWHERE),
    Access("patch", CONNECTIONS, ELSEWHERE, "status"),
    Access("create", "events", ELSEWHERE),
    Access("list", POLICIES, EVERYWHERE),
    Access("watch", CONNECTIONS, EVERYWHERE),
]


def can_i(kubectl: Kubectl, account: Obj, access: Access, places: dict[str, str]) -> bool:
    identity = f"system:serviceaccount:{account['metadata']['namespace']}:{account['metadata']['name']}"
    args = ["auth", "can-i", access.verb, access.resource, f"--as={identity}"]
    args += ["--all-namespaces"] if access.where == EVERYWHERE else ["--namespace", places[access.where]]
    args += [f"--subresource={access.subresource}"] if access.subresource else []
    result = kubectl(*args, check=False)
    answer = result.stdout.strip()
    if answer not in ("yes", "no"):
        raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr}")
    return answer == "yes"


def wrong_answers(
    kubectl: Kubectl, account: Obj, allowed: list[Access], denied: list[Access], places: dict[str, str]
) -> dict[str, list[Access]]:
    return {
        "denied but needed": [access for access in allowed if not can_i(kubectl, account, access, places)],
        "allowed but not needed": [access for access in denied if can_i(kubectl, account, access, places)],
    }


NOTHING_WRONG: dict[str, list[Access]] = {"denied but needed": [], "allowed but not needed": []}


def install(kubectl: Kubectl, render: Render, overlay: Path) -> list[Obj]:
    """Render ``overlay`` and apply it for real (its namespaces and CRDs first)."""
    objects = render(overlay)
    apply_prerequisites(kubectl, objects)
    kubectl.apply(objects, server_side=True)
    return objects


def service_account(objects: list[Obj]) -> Obj:
    (account,) = [obj for obj in objects if obj["kind"] == "ServiceAccount"]
    assert account["metadata"]["name"] == OPERATOR
    return account


def test_cluster_wide_install_grants_exactly_what_the_operator_uses(
    kubectl: Kubectl, installed_deploy: list[Obj], namespace: str
) -> None:
    """It watches every namespace, but reads Secrets and writes ConfigMaps only where a namespace opted in
    (here ``namespace``, as its owner would); ``kube-system`` and ``default`` did not."""
    account = service_account(installed_deploy)
    enable_namespace(kubectl, namespace, account)
    allowed = [
        *OWN_KINDS_AT_HOME,
        Access("list", POLICIES, EVERYWHERE),
        Access("watch", CONNECTIONS, EVERYWHERE),
    ]
    denied = [
        *NEVER,
        Access("list", "namespaces", EVERYWHERE),  # kopf lists namespaces only with --namespace
        *OUTSIDE_TENANT_ACCESS,
    ]
    answers = {
        elsewhere: wrong_answers(kubectl, account, allowed, denied, {HOME: namespace, ELSEWHERE: elsewhere})
        for elsewhere in ("kube-system", "default")
    }
    assert answers == dict.fromkeys(answers, NOTHING_WRONG)


def test_cluster_wide_install_reads_no_secret_before_a_namespace_opts_in(
    kubectl: Kubectl, installed_deploy: list[Obj], namespace: str
) -> None:
    own_kinds = [access for access in OWN_KINDS_AT_HOME if access not in TENANT_ACCESS]
    places = {HOME: namespace}
    answers = wrong_answers(kubectl, service_account(installed_deploy), own_kinds, TENANT_ACCESS, places)
    assert answers == NOTHING_WRONG


def test_namespaced_install_reaches_nothing_outside_its_namespace(
    kubectl: Kubectl, render: Render, namespace: str, tmp_path: Path
) -> None:
    objects = install(kubectl, render, user_copy(tmp_path, "deploy/overlays/namespaced", namespace=namespace))
    allowed = [*OWN_KINDS_AT_HOME, *WATCH_NAMESPACES]
    denied = [*NEVER, *OUTSIDE]
    places = {HOME: namespace, ELSEWHERE: "default"}
    assert wrong_answers(kubectl, service_account(objects), allowed, denied, places) == NOTHING_WRONG


def test_tenants_install_reads_secrets_only_in_its_tenant_namespaces(
    kubectl: Kubectl, render: Render, namespace: str, tmp_path: Path
) -> None:
    """The operator runs in ``namespace`` and serves two other namespaces: it may read a Secret by name in
    those two and nowhere else, not even where it runs. Its own kinds it may use everywhere: a tenant
    namespace's deletion removes the RoleBindings in it while the operator still removes its finalizers."""
    tenants = (f"{namespace}-a", f"{namespace}-b")
    try:
        objects = install(kubectl, render, tenants_copy(tmp_path, namespace=namespace, tenants=tenants))
        account = service_account(objects)
        assert account["metadata"]["namespace"] == namespace
        denied = [*NEVER, *OUTSIDE_TENANT_ACCESS, Access("get", "secrets", OPERATOR_HOME)]
        own_kinds_everywhere = [
            Access("get", POLICIES, ELSEWHERE),
            Access("patch", CONNECTIONS, ELSEWHERE),
            Access("list", POLICIES, EVERYWHERE),
            Access("watch", CONNECTIONS, EVERYWHERE),
        ]
        answers = {
            tenant: wrong_answers(
                kubectl,
                account,
                [*OWN_KINDS_AT_HOME, *WATCH_NAMESPACES, *own_kinds_everywhere],
                denied,
                {HOME: tenant, ELSEWHERE: "default", OPERATOR_HOME: namespace},
            )
            for tenant in tenants
        }
    finally:
        for tenant in tenants:
            kubectl("delete", "namespace", tenant, "--wait=false")
    assert answers == dict.fromkeys(tenants, NOTHING_WRONG)


def test_peering_may_patch_only_its_own_peering_objects(
    kubectl: Kubectl, render: Render, namespace: str, tmp_path: Path
) -> None:
    """A namespaced install with standby replicas: kopf patches the KopfPeering ``vmclock`` there, only."""
    overlay = user_copy(
        tmp_path, "deploy/overlays/namespaced", namespace=namespace, components=("../../components/peering",)
    )
    objects = install(kubectl, render, overlay)
    allowed = [
        Access("list", PEERINGS, HOME),
        Access("watch", PEERINGS, HOME),
        Access("patch", f"{PEERINGS}/vmclock", HOME),
        Access("list", CLUSTER_PEERINGS, EVERYWHERE),
        Access("patch", f"{CLUSTER_PEERINGS}/vmclock", EVERYWHERE),
    ]
    denied = [
        Access("patch", f"{PEERINGS}/other", HOME),
        Access("patch", f"{PEERINGS}/vmclock", ELSEWHERE),
        Access("list", PEERINGS, ELSEWHERE),
        Access("patch", f"{CLUSTER_PEERINGS}/other", EVERYWHERE),
        *(Access(verb, f"{PEERINGS}/vmclock", HOME) for verb in ("create", "update", "delete")),
        Access("create", CLUSTER_PEERINGS, EVERYWHERE),
    ]
    places = {HOME: namespace, ELSEWHERE: "default"}
    assert wrong_answers(kubectl, service_account(objects), allowed, denied, places) == NOTHING_WRONG
