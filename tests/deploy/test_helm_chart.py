"""deploy/helm/vmclock renders the same objects as the kustomize variants it stands for, keeps the CRDs on
uninstall and prune, takes the tenant namespaces as one list, refuses bad values naming the field, and passes
``helm lint``. The helm is the one built from Go modules (``tests/helmbuild``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deploy.helm import CHART, HelmError, HelmRender, by_key, drop_keep, run_helm
from deploy.kustomize import (
    DEFAULT_NAMESPACE,
    REPO,
    Obj,
    Render,
    of_kind,
    operator_container,
    tenants_copy,
    user_copy,
)

ARGO_KEEP = {"argocd.argoproj.io/sync-options": "Prune=false,Delete=false"}
ELSEWHERE = "team-ops"
OTHER_TENANTS = ("team-red", "team-blue")
# kustomize variant -> the chart values that stand for it (tenants: one list value).
VARIANTS = {
    "default": ([], lambda render, _: render(REPO / "deploy")),
    "ha": (["peering.enabled=true"], lambda render, _: render(REPO / "deploy" / "overlays" / "ha")),
    "tenants": (
        ["tenants={tenant-a,tenant-b}"],
        lambda render, _: render(REPO / "deploy" / "overlays" / "tenants"),
    ),
}
ELSEWHERE_VARIANTS = {
    "ha-elsewhere": (
        ["peering.enabled=true"],
        lambda render, root: render(user_copy(root, "deploy/overlays/ha", namespace=ELSEWHERE)),
    ),
    "tenants-elsewhere": (
        [f"tenants={{{','.join(OTHER_TENANTS)}}}"],
        lambda render, root: render(tenants_copy(root, namespace=ELSEWHERE, tenants=OTHER_TENANTS)),
    ),
}


def crd_names() -> set[str]:
    return {yaml.safe_load(path.read_text())["metadata"]["name"] for path in (REPO / "crds").glob("*.yaml")}


def differences(kustomized: list[Obj], charted: list[Obj]) -> dict[str, object]:
    ours, theirs = by_key(kustomized), by_key(charted)
    return {
        "only kustomize": sorted(ours.keys() - theirs.keys()),
        "only helm": sorted(theirs.keys() - ours.keys()),
        "different": sorted(key for key in ours.keys() & theirs.keys() if ours[key] != theirs[key]),
    }


SAME: dict[str, object] = {"only kustomize": [], "only helm": [], "different": []}


@pytest.mark.parametrize("variant", [*VARIANTS, *ELSEWHERE_VARIANTS])
def test_chart_renders_the_objects_of_the_kustomize_variant(
    render: Render, render_chart: HelmRender, variant: str, tmp_path: Path
) -> None:
    values, kustomized = {**VARIANTS, **ELSEWHERE_VARIANTS}[variant]
    namespace = ELSEWHERE if variant.endswith("-elsewhere") else "vmclock-system"
    charted = render_chart(values=values, namespace=namespace)
    # The one deliberate difference: helm uninstall keeps the CRDs (kustomize has no such notion).
    assert sorted(drop_keep(charted)) == sorted(crd_names())
    assert differences(kustomized(render, tmp_path), charted) == SAME


def test_crds_survive_helm_uninstall_and_argo_cd_prune_or_deletion(render_chart: HelmRender) -> None:
    crds = {crd["metadata"]["name"]: crd for crd in of_kind(render_chart(), "CustomResourceDefinition")}
    assert crds.keys() == crd_names()
    wanted = {"helm.sh/resource-policy": "keep", **ARGO_KEEP}
    assert {name: crd["metadata"]["annotations"] for name, crd in crds.items()} == dict.fromkeys(crds, wanted)


def test_tenant_namespaces_are_one_list_value(render_chart: HelmRender) -> None:
    tenants = ["alpha", "beta", "gamma"]
    objects = render_chart(values=[f"tenants={{{','.join(tenants)}}}"])
    served = [arg.removeprefix("--namespace=") for arg in operator_container(objects)["args"] if "=" in arg]
    assert served[: len(tenants)] == tenants
    assert "-A" not in operator_container(objects)["args"]
    bound = sorted(
        (obj["metadata"]["namespace"], obj["roleRef"]["name"]) for obj in of_kind(objects, "RoleBinding")
    )
    assert bound == sorted((tenant, "vmclock-tenant") for tenant in tenants)
    cluster_wide = {obj["roleRef"]["name"] for obj in of_kind(objects, "ClusterRoleBinding")}
    assert cluster_wide == {
        "vmclock-operator",
        "vmclock-operator-crd-watch",
        "vmclock-operator-namespace-watch",
    }


@pytest.mark.parametrize(
    ("values", "named"),
    [
        (["tenants={Team_A}"], "at '/tenants/0': 'Team_A' does not match pattern"),
        (
            ["image.pullPolicy=Sometimes"],
            "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent'",
        ),
        (["peering.enabled=true", "tenants={team-a}"], "peering.enabled=true needs tenants=[]"),
        (["extraArgs={allowed-endpoint=x}"], "at '/extraArgs/0'"),
        (["replicas=3"], "additional properties 'replicas' not allowed"),
    ],
)
def test_bad_values_are_refused_naming_the_field(
    render_chart: HelmRender, values: list[str], named: str
) -> None:
    with pytest.raises(HelmError) as refused:
        render_chart(values=values)
    assert named in str(refused.value)


def test_extra_args_reach_the_operator(render_chart: HelmRender) -> None:
    objects = render_chart(values=["extraArgs={--allowed-endpoint=*.zstack.example}"])
    assert operator_container(objects)["args"][-1] == "--allowed-endpoint=*.zstack.example"


@pytest.mark.parametrize(
    "values", [[], ["peering.enabled=true"], ["tenants={tenant-a,tenant-b}"], ["monitoring.enabled=true"]]
)
def test_helm_lint_is_clean(helm: Path, values: list[str]) -> None:
    sets = [arg for value in values for arg in ("--set", value)]
    result = run_helm(helm, "lint", "--strict", str(CHART), *sets)
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


MONITORING_OBJECT = """\
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: vmclock-operator
spec:
  groups: []
"""


def test_the_monitoring_toggle_renders_deploy_monitoring(render: Render, render_chart: HelmRender) -> None:
    """files/monitoring links to deploy/monitoring, and the toggle renders exactly its Component's objects,
    in the namespace the operator is installed in, with its label (a Component takes both from what includes
    it)."""
    monitoring, linked = REPO / "deploy" / "monitoring", CHART / "files" / "monitoring"
    assert linked.resolve() == monitoring.resolve(), f"ln -s ../../../monitoring {linked.relative_to(REPO)}"
    base = by_key(render_chart())
    charted = [
        obj
        for key, obj in by_key(render_chart(values=["monitoring.enabled=true"])).items()
        if key not in base
    ]
    part_of = {"app.kubernetes.io/part-of": "vmclock"}
    placed = [
        {
            **obj,
            "metadata": {
                **obj["metadata"],
                "namespace": DEFAULT_NAMESPACE,
                "labels": {**part_of, **(obj["metadata"].get("labels") or {})},
            },
        }
        for obj in render(monitoring)
    ]
    assert charted, "the toggle renders something"
    assert differences(placed, charted) == SAME
