"""Rendering the Helm chart (deploy/helm/vmclock) with the helm built from Go modules, and comparing what it
renders with a kustomize variant the way the API server would see both: objects keyed by kind, namespace and
name, cluster-scoped kinds without a namespace (kustomize gives every object its namespace)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from deploy.kustomize import DEFAULT_NAMESPACE, REPO, Obj, parse_objects

CHART = REPO / "deploy" / "helm" / "vmclock"
RELEASE = "vmclock"
KEEP = ("helm.sh/resource-policy", "keep")
CLUSTER_SCOPED = {
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "ClusterKopfPeering",
}
HelmRender = Callable[..., list[Obj]]
Key = tuple[str, str, str]


class HelmError(RuntimeError):
    """helm exited non-zero; the message carries its stderr."""


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(helm), *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise HelmError(f"helm {' '.join(args)} (exit {result.returncode}):\n{result.stderr}")
    return result


def helm_template(
    helm: Path, *, chart: Path = CHART, namespace: str = DEFAULT_NAMESPACE, values: Sequence[str] = ()
) -> list[Obj]:
    """``helm template`` with ``--set`` values (``key=value``), as an install into ``namespace`` would."""
    sets = [arg for value in values for arg in ("--set", value)]
    return parse_objects(run_helm(helm, "template", RELEASE, str(chart), "-n", namespace, *sets).stdout)


def by_key(objects: list[Obj]) -> dict[Key, Obj]:
    """Objects by (kind, namespace, name); cluster-scoped ones lose the namespace kustomize may give them."""
    keyed: dict[Key, Obj] = {}
    for obj in objects:
        if obj["kind"] in CLUSTER_SCOPED:
            obj["metadata"].pop("namespace", None)
        keyed[obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]] = obj
    return keyed


def drop_keep(objects: list[Obj]) -> list[str]:
    """Remove the ``helm.sh/resource-policy: keep`` annotation in place; return the names that had it."""
    kept = []
    for obj in objects:
        annotations = obj["metadata"].get("annotations", {})
        if annotations.get(KEEP[0]) == KEEP[1]:
            kept.append(obj["metadata"]["name"])
            del annotations[KEEP[0]]
    return kept
