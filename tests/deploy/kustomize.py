"""Rendering the deploy/ kustomizations the way a user would, querying and applying the rendered objects.

:func:`user_copy` reproduces the documented way of installing into another namespace: copy the tree and
edit the overlay's ``namespace:`` (kustomize forbids absolute paths, and its replacements must see the
final namespace, so a wrapper kustomization around the overlay would not be the same thing).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from controlplane import Kubectl

REPO = Path(__file__).resolve().parents[2]
DEFAULT_NAMESPACE = "vmclock-system"
OPERATOR = "vmclock-operator"
CRD_ESTABLISHED_TIMEOUT = "60s"

Obj = dict[str, Any]
Render = Callable[[Path], list[Obj]]


def parse_objects(text: str) -> list[Obj]:
    return [document for document in yaml.safe_load_all(text) if document]


def user_copy(destination: Path, overlay: str, *, namespace: str, components: tuple[str, ...] = ()) -> Path:
    """Copy ``deploy/`` and ``crds/`` to ``destination``, set the overlay's namespace (and add components).

    Returns the overlay directory inside the copy.
    """
    for tree in ("deploy", "crds"):
        shutil.copytree(REPO / tree, destination / tree)
    directory = destination / overlay
    kustomization = directory / "kustomization.yaml"
    text = kustomization.read_text()
    old = f"\nnamespace: {DEFAULT_NAMESPACE}\n"
    if old not in text:
        raise AssertionError(
            f"{overlay}/kustomization.yaml has no `namespace: {DEFAULT_NAMESPACE}` line to edit"
        )
    text = text.replace(old, f"\nnamespace: {namespace}\n")
    if components:
        document = yaml.safe_load(text)
        document["components"] = [*document.get("components", []), *components]
        text = yaml.safe_dump(document, sort_keys=False)
    kustomization.write_text(text)
    return directory


TENANTS = "deploy/overlays/tenants"
SHIPPED_TENANTS = ("tenant-a", "tenant-b")
TENANT_BINDINGS = 1  # RoleBindings per tenant namespace in tenants.yaml
SERVED = "--namespace="


def tenants_copy(
    destination: Path, *, namespace: str, tenants: tuple[str, ...], components: tuple[str, ...] = ()
) -> Path:
    """The tenants overlay as a user adapts it: the operator's namespace set in ``operator/``, the tenant
    list replaced by ``tenants`` in both places (tenants.yaml: the shipped first tenant's RoleBinding
    copied once per tenant with its ``namespace:``; operator/: one ``--namespace`` argument per tenant),
    components added where the operator is placed. Returns the overlay directory to render."""
    user_copy(destination, f"{TENANTS}/operator", namespace=namespace, components=components)
    overlay = destination / TENANTS
    list_bindings(overlay / "tenants.yaml", tenants)
    list_arguments(overlay / "operator" / "kustomization.yaml", tenants)
    return overlay


def list_bindings(path: Path, tenants: tuple[str, ...]) -> None:
    """Rewrite tenants.yaml to hold the shipped tenant's RoleBindings once for each of ``tenants``."""
    documents = path.read_text().split("\n---\n")
    for shipped in SHIPPED_TENANTS:
        if sum(f"namespace: {shipped}\n" in document for document in documents) != TENANT_BINDINGS:
            raise AssertionError(f"{TENANTS}/tenants.yaml does not bind tenant {shipped} {TENANT_BINDINGS}x")
    first = f"namespace: {SHIPPED_TENANTS[0]}\n"
    template = [document for document in documents if first in document]
    copies = [
        document.replace(first, f"namespace: {tenant}\n") for tenant in tenants for document in template
    ]
    path.write_text("\n---\n".join(copies) + "\n")


def list_arguments(path: Path, tenants: tuple[str, ...]) -> None:
    """One ``--namespace`` argument per tenant in the Deployment patch, where the shipped ones were."""
    document = yaml.safe_load(path.read_text())
    (patch,) = [patch for patch in document["patches"] if patch["target"]["kind"] == "Deployment"]
    ops = yaml.safe_load(patch["patch"])
    served = [index for index, op in enumerate(ops) if str(op.get("value", "")).startswith(SERVED)]
    listed = tuple(ops[index]["value"].removeprefix(SERVED) for index in served)
    if listed != SHIPPED_TENANTS or served != list(range(served[0], served[0] + len(served))):
        raise AssertionError(
            f"{TENANTS}/operator/kustomization.yaml lists {listed} (patch ops {served}), "
            f"not {SHIPPED_TENANTS} in a row"
        )
    first = ops[served[0]]
    args, _, start = first["path"].rpartition("/")
    added = [
        {"op": "add", "path": f"{args}/{int(start) + position}", "value": f"{SERVED}{tenant}"}
        for position, tenant in enumerate(tenants)
    ]
    patch["patch"] = yaml.safe_dump([*ops[: served[0]], *added, *ops[served[-1] + 1 :]], sort_keys=False)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    (found,) = [obj for obj in of_kind(objects, kind) if name is None or obj["metadata"]["name"] == name]
    return found


def operator_container(objects: list[Obj]) -> Obj:
    (container,) = one(objects, "Deployment", OPERATOR)["spec"]["template"]["spec"]["containers"]
    return container


def bindings(objects: list[Obj]) -> Iterator[Obj]:
    for obj in objects:
        if obj["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            yield obj


def apply_prerequisites(kubectl: Kubectl, objects: list[Obj]) -> None:
    """Create for real what a dry run cannot: Namespaces and CRDs the other objects need.

    Namespaces the rendering only refers to (an overlay installing into an existing namespace) are
    created bare when missing; those it defines are applied as rendered.
    """
    needed = [obj for obj in objects if obj["kind"] in ("Namespace", "CustomResourceDefinition")]
    defined = {obj["metadata"]["name"] for obj in needed if obj["kind"] == "Namespace"}
    referred = {obj["metadata"]["namespace"] for obj in objects if "namespace" in obj["metadata"]}
    for name in sorted(referred - defined):
        if kubectl("get", "namespace", name, check=False).returncode != 0:
            kubectl("create", "namespace", name)
    if needed:
        kubectl.apply(needed, server_side=True)
    crds = [f"crd/{obj['metadata']['name']}" for obj in needed if obj["kind"] == "CustomResourceDefinition"]
    if crds:
        kubectl("wait", "--for=condition=established", f"--timeout={CRD_ESTABLISHED_TIMEOUT}", *crds)
