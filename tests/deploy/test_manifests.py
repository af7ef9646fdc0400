"""deploy/: every variant renders with kustomize, passes a server-side dry run, and keeps its promises.

Variants: ``deploy/`` (cluster-wide), ``overlays/ha`` (plus the peering component), ``overlays/namespaced``
and ``overlays/tenants`` as shipped, and the documented ways of using them elsewhere (a copy with another
``namespace:`` and, for tenants, other tenant namespaces, optionally listing the peering or NetworkPolicy
component).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from controlplane import Kubectl
from deploy.dockerfile_replay import parse_dockerfile
from deploy.kustomize import (
    DEFAULT_NAMESPACE,
    OPERATOR,
    REPO,
    Obj,
    Render,
    apply_prerequisites,
    bindings,
    of_kind,
    one,
    operator_container,
    parse_objects,
    tenants_copy,
    user_copy,
)
from hostile.test_hostile import MAX_GROWTH_MIB
from vmclock.kopfapp.settings import build_settings
from vmclock.zstack.budget import DEFAULT_LIMIT

SHIPPED = {
    "default": REPO / "deploy",
    "namespaced": REPO / "deploy" / "overlays" / "namespaced",
    "ha": REPO / "deploy" / "overlays" / "ha",
    "tenants": REPO / "deploy" / "overlays" / "tenants",
}
COMPONENTS = {"peering": "components/peering", "networkpolicy": "components/networkpolicy"}
PEERING_NAME = "vmclock"
TENANT_ROLE = "vmclock-tenant"


def flag_values(container: Obj) -> dict[str, str]:
    """``--name=value`` arguments of the operator container as a mapping."""
    return dict(arg.removeprefix("--").split("=", 1) for arg in container["args"] if "=" in arg)


def downward_env(container: Obj) -> dict[str, str]:
    return {
        item["name"]: item["valueFrom"]["fieldRef"]["fieldPath"]
        for item in container["env"]
        if "fieldRef" in item.get("valueFrom", {})
    }


def dockerfile_instructions(keyword: str) -> list[str]:
    (*_, runtime) = parse_dockerfile((REPO / "Dockerfile").read_text())
    return [instruction.arguments for instruction in runtime.instructions if instruction.keyword == keyword]


def test_crds_kustomization_lists_every_crd_manifest() -> None:
    listed = yaml.safe_load((REPO / "crds" / "Kustomization").read_text())["resources"]
    assert sorted(listed) == sorted(path.name for path in (REPO / "crds").glob("*.yaml"))


def test_default_install_carries_the_crds_unchanged(render: Render) -> None:
    rendered = {
        obj["metadata"]["name"]: obj["spec"]
        for obj in of_kind(render(SHIPPED["default"]), "CustomResourceDefinition")
    }
    files = [parse_objects(path.read_text()) for path in sorted((REPO / "crds").glob("*.yaml"))]
    assert rendered == {obj["metadata"]["name"]: obj["spec"] for (obj,) in files}


# Peak RSS of the operator in bench/bench_operator.py (one 1,000-VM policy, then 100 ten-VM policies).
MEASURED_PEAK_RSS_MIB = 121


def mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    return float(quantity[:-2]) * units[quantity[-2:]]


@pytest.mark.parametrize("variant", SHIPPED)
def test_operator_pod_is_locked_down(render: Render, variant: str) -> None:
    objects = render(SHIPPED[variant])
    pod = one(objects, "Deployment", OPERATOR)["spec"]["template"]["spec"]
    container = operator_container(objects)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    requests, limits = container["resources"]["requests"], container["resources"]["limits"]
    assert mebibytes(requests["memory"]) >= MEASURED_PEAK_RSS_MIB
    assert mebibytes(limits["memory"]) >= 2 * MEASURED_PEAK_RSS_MIB
    # Idle, plus every reply in flight at its budget, plus what the hostile tests let one tenant cost besides.
    assert mebibytes(limits["memory"]) >= MEASURED_PEAK_RSS_MIB + DEFAULT_LIMIT / 2**20 + MAX_GROWTH_MIB
    assert "cpu" not in limits  # throttling the event loop delays watch events and probes
    assert downward_env(container)["POD_NAME"] == "metadata.name"
    assert pod["serviceAccountName"] == OPERATOR


def test_probe_ports_and_user_agree_with_the_operator_flags_and_the_image(render: Render) -> None:
    objects = render(SHIPPED["default"])
    container = operator_container(objects)
    pod = one(objects, "Deployment", OPERATOR)["spec"]["template"]["spec"]
    flags = flag_values(container)
    liveness = urlsplit(flags["liveness"])
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    probe = container["livenessProbe"]["httpGet"]
    assert (probe["path"], ports[probe["port"]]) == (liveness.path, liveness.port)
    assert ports["metrics"] == int(flags["metrics-port"])
    (service_port,) = one(objects, "Service")["spec"]["ports"]
    assert (service_port["name"], service_port["port"], service_port["targetPort"]) == (
        "metrics",
        9090,
        "metrics",
    )
    exposed = {int(port) for line in dockerfile_instructions("EXPOSE") for port in shlex.split(line)}
    assert exposed == set(ports.values())
    (user,) = dockerfile_instructions("USER")
    assert user == f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}"


def test_default_install_is_one_recreated_replica_watching_all_namespaces(render: Render) -> None:
    objects = render(SHIPPED["default"])
    deployment = one(objects, "Deployment", OPERATOR)
    assert (deployment["spec"]["replicas"], deployment["spec"]["strategy"]) == (1, {"type": "Recreate"})
    assert operator_container(objects)["args"][0] == "-A"
    assert (
        one(objects, "Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    )


def test_namespaced_overlay_binds_the_operator_rules_only_in_its_namespace(render: Render) -> None:
    objects = render(SHIPPED["namespaced"])
    container = operator_container(objects)
    assert container["args"][0] == "--namespace=$(POD_NAMESPACE)"
    assert "-A" not in container["args"]
    assert downward_env(container)["POD_NAMESPACE"] == "metadata.namespace"
    assert of_kind(objects, "Namespace") == []  # the tenant's namespace is not ours to manage or prune
    cluster_wide = {obj["roleRef"]["name"] for obj in of_kind(objects, "ClusterRoleBinding")}
    assert cluster_wide == {"vmclock-operator-crd-watch", "vmclock-operator-namespace-watch"}
    bound = sorted(
        (obj["metadata"]["namespace"], obj["roleRef"]["name"]) for obj in of_kind(objects, "RoleBinding")
    )
    assert bound == [(DEFAULT_NAMESPACE, OPERATOR), (DEFAULT_NAMESPACE, TENANT_ROLE)]


def test_ha_overlay_runs_a_standby_replica_with_peering(render: Render) -> None:
    objects = render(SHIPPED["ha"])
    deployment = one(objects, "Deployment", OPERATOR)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert operator_container(objects)["args"][-1] == "--peering=vmclock"
    assert {obj["kind"] for obj in objects} >= {"ClusterKopfPeering", "KopfPeering"}


def rendered_variant(render: Render, variant: str, copy_root: Path, namespace: str) -> list[Obj]:
    """A shipped variant, or ``<overlay>-elsewhere[+<component>...]``: the documented copy into another
    namespace (tenants: serving ``<namespace>-a`` and ``<namespace>-b``), listing those components."""
    if variant in SHIPPED:
        return render(SHIPPED[variant])
    overlay, *listed = variant.split("+")
    name = overlay.removesuffix("-elsewhere")
    if name == "tenants":
        components = tuple(f"../../../{COMPONENTS[component]}" for component in listed)
        tenants = (f"{namespace}-a", f"{namespace}-b")
        return render(tenants_copy(copy_root, namespace=namespace, tenants=tenants, components=components))
    components = tuple(f"../../{COMPONENTS[component]}" for component in listed)
    return render(user_copy(copy_root, f"deploy/overlays/{name}", namespace=namespace, components=components))


ALL_VARIANTS = [
    *SHIPPED,
    "namespaced-elsewhere",
    "namespaced-elsewhere+peering",
    "namespaced-elsewhere+peering+networkpolicy",
    "ha-elsewhere+networkpolicy",
    "tenants-elsewhere",
    "tenants-elsewhere+networkpolicy",
]


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_every_binding_names_the_operator_service_account_where_it_lives(
    render: Render, variant: str, tmp_path: Path
) -> None:
    objects = rendered_variant(render, variant, tmp_path, "tenant-a")
    (account,) = of_kind(objects, "ServiceAccount")
    expected = [{"kind": "ServiceAccount", "name": OPERATOR, "namespace": account["metadata"]["namespace"]}]
    wrong = {
        obj["metadata"]["name"]: obj["subjects"] for obj in bindings(objects) if obj["subjects"] != expected
    }
    assert wrong == {}
    if variant.startswith(("namespaced-elsewhere", "tenants-elsewhere")):
        assert account["metadata"]["namespace"] == "tenant-a"
        assert all(
            obj["metadata"]["name"].endswith(".tenant-a") for obj in of_kind(objects, "ClusterRoleBinding")
        )


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_server_side_dry_run_accepts_everything_rendered(
    render: Render, kubectl: Kubectl, namespace: str, variant: str, tmp_path: Path
) -> None:
    objects = rendered_variant(render, variant, tmp_path, namespace)
    apply_prerequisites(kubectl, objects)
    result = kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--dry-run=server",
        "-f",
        "-",
        input=yaml.safe_dump_all(objects),
    )
    assert result.stdout.count("serverside-applied (server dry run)") == len(objects)
    assert "PodSecurity" not in result.stderr


def test_kubelet_waits_longer_than_the_operator_takes_to_shut_down(render: Render) -> None:
    pod = one(render(SHIPPED["default"]), "Deployment", OPERATOR)["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > build_settings().process.ultimate_exiting_timeout


def namespace_args(container: Obj) -> list[str]:
    return [arg.removeprefix("--namespace=") for arg in container["args"] if arg.startswith("--namespace=")]


def test_tenants_overlay_binds_the_operator_rules_in_exactly_the_namespaces_it_serves(render: Render) -> None:
    objects = render(SHIPPED["tenants"])
    container = operator_container(objects)
    account = one(objects, "ServiceAccount", OPERATOR)["metadata"]["namespace"]
    assert "-A" not in container["args"]
    served = namespace_args(container)
    bound = sorted(
        (obj["metadata"]["namespace"], obj["roleRef"]["name"]) for obj in of_kind(objects, "RoleBinding")
    )
    assert sorted(served) == ["tenant-a", "tenant-b"]
    assert bound == [(tenant, TENANT_ROLE) for tenant in sorted(served)]
    # Secrets and ConfigMaps (vmclock-tenant) are bound nowhere cluster-wide; the operator's own kinds are, so
    # that a tenant namespace's deletion (which removes its RoleBindings) still lets it remove its finalizers.
    cluster_wide = {obj["roleRef"]["name"] for obj in of_kind(objects, "ClusterRoleBinding")}
    assert cluster_wide == {OPERATOR, "vmclock-operator-crd-watch", "vmclock-operator-namespace-watch"}
    assert all(
        obj["metadata"]["name"].endswith(f".{account}") for obj in of_kind(objects, "ClusterRoleBinding")
    )
    # The operator's own namespace is created, with the restricted Pod Security Standard.
    (home,) = of_kind(objects, "Namespace")
    assert home["metadata"]["name"] == account
    assert home["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def cluster_wide_rules(objects: list[Obj]) -> list[Obj]:
    """The rules of every ClusterRole that a ClusterRoleBinding grants cluster-wide."""
    bound = {obj["roleRef"]["name"] for obj in of_kind(objects, "ClusterRoleBinding")}
    return [
        rule
        for role in of_kind(objects, "ClusterRole")
        if role["metadata"]["name"] in bound
        for rule in role["rules"]
    ]


@pytest.mark.parametrize("variant", SHIPPED)
def test_no_variant_grants_secrets_or_configmaps_cluster_wide(render: Render, variant: str) -> None:
    """design.md §6.5: a namespace opts in with a RoleBinding; even the operator watching every namespace
    reads credentials and writes records nowhere else."""
    rules = cluster_wide_rules(render(SHIPPED[variant]))
    assert rules
    assert [rule for rule in rules if {"secrets", "configmaps", "*"} & set(rule["resources"])] == []


def test_the_opt_in_role_grants_exactly_the_secret_and_configmap_verbs(render: Render) -> None:
    (role,) = [
        obj
        for obj in of_kind(render(SHIPPED["default"]), "ClusterRole")
        if obj["metadata"]["name"] == TENANT_ROLE
    ]
    granted = {
        (resource, verb) for rule in role["rules"] for resource in rule["resources"] for verb in rule["verbs"]
    }
    assert granted == {
        ("secrets", "get"),
        *(("configmaps", verb) for verb in ("get", "create", "update", "delete")),
    }


def test_peering_patches_only_the_peering_object_the_operator_is_told_to_use(render: Render) -> None:
    objects = render(SHIPPED["ha"])
    assert f"--peering={PEERING_NAME}" in operator_container(objects)["args"]
    peerings = {
        obj["metadata"]["name"] for obj in objects if obj["kind"] in ("ClusterKopfPeering", "KopfPeering")
    }
    assert peerings == {PEERING_NAME}
    rules = [
        rule
        for role in objects
        if role["kind"] in ("ClusterRole", "Role") and role["metadata"]["name"] == f"{OPERATOR}-peering"
        for rule in role["rules"]
    ]
    writes = [rule for rule in rules if set(rule["verbs"]) - {"list", "watch"}]
    assert {resource for rule in writes for resource in rule["resources"]} == {
        "clusterkopfpeerings",
        "kopfpeerings",
    }
    assert [(rule["verbs"], rule.get("resourceNames")) for rule in writes] == [
        (["patch"], [PEERING_NAME])
    ] * 2


def test_networkpolicy_component_admits_only_the_probe_and_metrics_ports(
    render: Render, tmp_path: Path
) -> None:
    objects = render(
        user_copy(
            tmp_path,
            "deploy/overlays/ha",
            namespace="tenant-a",
            components=("../../components/networkpolicy",),
        )
    )
    deployment = one(objects, "Deployment", OPERATOR)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    container = operator_container(objects)
    policies = of_kind(objects, "NetworkPolicy")
    assert {obj["metadata"]["name"] for obj in policies} == {
        OPERATOR,
        f"{OPERATOR}-apiserver",
        f"{OPERATOR}-zstack",
    }
    for policy in policies:
        assert policy["metadata"]["namespace"] == "tenant-a"
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    main = one(policies, "NetworkPolicy", OPERATOR)["spec"]
    assert sorted(main["policyTypes"]) == ["Egress", "Ingress"]  # default deny both ways for the pod
    (ingress,) = main["ingress"]
    assert "from" not in ingress  # kubelet probes and Prometheus come from outside the namespace
    ingress_ports = {(port["protocol"], port["port"]) for port in ingress["ports"]}
    assert ingress_ports == {("TCP", port["containerPort"]) for port in container["ports"]}
    (dns,) = main["egress"]
    assert {(port["protocol"], port["port"]) for port in dns["ports"]} == {("UDP", 53), ("TCP", 53)}
    # The user-edited lists are addresses (NetworkPolicies cannot match names), and nothing is open to all.
    for name in ("apiserver", "zstack"):
        (rule,) = one(policies, "NetworkPolicy", f"{OPERATOR}-{name}")["spec"]["egress"]
        assert rule["to"]
        assert all(set(peer) == {"ipBlock"} and peer["ipBlock"]["cidr"] != "0.0.0.0/0" for peer in rule["to"])
        assert rule["ports"]
