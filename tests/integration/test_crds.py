"""The CRDs and the examples on a real kube-apiserver.

Admission (OpenAPI validation, CEL rules, list types, strict field validation), defaulting, pruning, printer
columns and ``kubectl explain`` are the API server's behaviour, driven only by our YAML, so they are tested
where they happen. A few offline checks guard the schema conventions the server would accept silently
(a missing description or size bound is not an error, just a worse API).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane import ControlPlane, Kubectl
from vmclock.zstack import selection as limits

ROOT = Path(__file__).resolve().parents[2]
CRD_FILES = sorted((ROOT / "crds").glob("*.yaml"))
EXAMPLES = ROOT / "examples"
EXAMPLE_FILES = sorted(p for p in EXAMPLES.glob("*.yaml") if p.name != "kustomization.yaml")
GROUP = "vmclock.zstack.io"
API_VERSION = f"{GROUP}/v1alpha1"
UUID_RE = re.compile(r"^[0-9a-f]{32}$")
# etcd's default --max-request-bytes: the API server stores an object in one request, so no object,
# managedFields and annotations included, can grow past it.
ETCD_REQUEST_LIMIT = 1536 * 1024
# design.md's size target for a 1,000-VM status; only reported, see the status round-trip test.
STATUS_TARGET = 256 * 1024

Obj = dict[str, Any]


def _vm_uuid(index: int) -> str:
    return f"{index:032x}"


def _policy(**spec: Any) -> Obj:
    return {
        "apiVersion": API_VERSION,
        "kind": "VmClockPolicy",
        "metadata": {"name": "policy"},
        "spec": {"track": "guest", "vmUuids": [_vm_uuid(1), _vm_uuid(2)], **spec},
    }


def _selector_policy(**selector: Any) -> Obj:
    """A policy selecting VMs by attributes (no vmUuids)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "VmClockPolicy",
        "metadata": {"name": "policy"},
        "spec": {"track": "guest", "selector": selector},
    }


def _connection(**spec: Any) -> Obj:
    return {
        "apiVersion": API_VERSION,
        "kind": "ZStackConnection",
        "metadata": {"name": "conn"},
        "spec": {
            "endpoint": "https://zstack.example:8080",
            "credentialsSecretRef": {"name": "creds"},
            **spec,
        },
    }


# ---------------------------------------------------------------------------------------------------------
# Offline: conventions of the schema files themselves.


def _load_crd(path: Path) -> Obj:
    crd: Obj = yaml.safe_load(path.read_text())
    return crd


def _schema_nodes(node: Obj, path: str) -> Iterator[tuple[str, Obj]]:
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from _schema_nodes(child, f"{path}.{name}")
    if "items" in node:
        yield from _schema_nodes(node["items"], f"{path}[]")


def _schema_problems(path: str, node: Obj) -> list[str]:
    problems = []
    if not node.get("description"):
        problems.append(f"{path}: no description (kubectl explain would show nothing)")
    if node.get("type") == "string" and "maxLength" not in node:
        problems.append(f"{path}: string without maxLength (unbounded CEL cost estimate)")
    if node.get("type") == "array" and "maxItems" not in node:
        problems.append(f"{path}: array without maxItems")
    if node.get("type") == "object" and "properties" not in node:
        problems.append(f"{path}: object without declared properties (would be pruned)")
    if node.get("x-kubernetes-preserve-unknown-fields"):
        problems.append(f"{path}: preserves unknown fields (typos would be kept instead of rejected)")
    return problems


@pytest.mark.parametrize("crd_file", CRD_FILES, ids=lambda p: p.name)
def test_every_spec_and_status_field_is_documented_and_bounded(crd_file: Path) -> None:
    (version,) = _load_crd(crd_file)["spec"]["versions"]
    root = version["schema"]["openAPIV3Schema"]
    problems = [
        problem
        for top in ("spec", "status")
        for path, node in _schema_nodes(root["properties"][top], top)
        for problem in _schema_problems(path, node)
    ]
    assert problems == []


def test_status_vms_has_room_for_every_selected_vm_and_every_dropped_one() -> None:
    """status.vms lists the (up to 1000) selected VMs plus each dropped VM still awaiting restore, which may
    be as many again; a smaller maxItems would make the API server reject (422) the operator's status."""
    crd = _load_crd(ROOT / "crds" / "vmclock.zstack.io_vmclockpolicies.yaml")
    (version,) = crd["spec"]["versions"]
    properties = version["schema"]["openAPIV3Schema"]["properties"]
    assert properties["spec"]["properties"]["vmUuids"]["maxItems"] == 1000
    assert properties["status"]["properties"]["vms"]["maxItems"] == 2000


def _is_selector_example(path: Path) -> bool:
    return any("selector" in doc.get("spec", {}) for doc in yaml.safe_load_all(path.read_text()))


def test_kustomization_lists_every_example_but_the_selector_ones() -> None:
    """The sandbox applies the kustomization after mapping each policy's vmUuids onto its simulated fleet; a
    selector example has no UUID list to map, so it is applied on its own (and says so)."""
    kustomization = yaml.safe_load((EXAMPLES / "kustomization.yaml").read_text())
    listed = [p.name for p in EXAMPLE_FILES if not _is_selector_example(p)]
    assert sorted(kustomization["resources"]) == listed
    assert "namespace" not in kustomization
    selector_examples = [p for p in EXAMPLE_FILES if _is_selector_example(p)]
    assert selector_examples
    assert all(f"kubectl apply -f examples/{p.name}" in p.read_text() for p in selector_examples)


def _listed_uuids(spec: Obj) -> set[str]:
    selector = spec.get("selector", {})
    lists = [spec.get("vmUuids", [])] + [
        selector.get(k, []) for k in ("zoneUuids", "clusterUuids", "excludeVmUuids")
    ]
    return {uuid for values in lists for uuid in values}


def test_example_uuids_are_the_only_uuid_shaped_strings() -> None:
    """A user replaces the example UUIDs (and the sandbox its VM UUIDs) by pattern; nothing else may match."""
    for path in EXAMPLE_FILES:
        text = path.read_text()
        listed = {
            uuid
            for doc in yaml.safe_load_all(text)
            if doc["kind"] == "VmClockPolicy"
            for uuid in _listed_uuids(doc["spec"])
        }
        assert set(re.findall(r"\b[0-9a-f]{32}\b", text)) == listed, path.name
        assert all(UUID_RE.match(uuid) for uuid in listed), path.name


def _policy_schema() -> Obj:
    crd = _load_crd(ROOT / "crds" / "vmclock.zstack.io_vmclockpolicies.yaml")
    (version,) = crd["spec"]["versions"]
    schema: Obj = version["schema"]["openAPIV3Schema"]
    return schema


def test_selector_bounds_are_the_ones_the_query_builder_is_measured_with() -> None:
    """tests/zstack/test_selection.py proves the largest selector fits in 8 KiB request lines using these
    constants; the CRD must not admit anything larger."""
    selector = _policy_schema()["properties"]["spec"]["properties"]["selector"]["properties"]
    assert selector["platforms"]["items"]["enum"] == list(limits.PLATFORMS)
    assert selector["platforms"]["maxItems"] == len(limits.PLATFORMS)
    assert selector["zoneUuids"]["maxItems"] == limits.MAX_ZONE_UUIDS
    assert selector["clusterUuids"]["maxItems"] == limits.MAX_CLUSTER_UUIDS
    assert selector["namePattern"]["maxLength"] == limits.MAX_NAME_PATTERN
    assert selector["userTags"]["maxItems"] == limits.MAX_USER_TAGS
    assert selector["userTags"]["items"]["maxLength"] == limits.MAX_USER_TAG_LENGTH
    assert selector["excludeVmUuids"]["maxItems"] == limits.MAX_EXCLUDED_VMS


# ---------------------------------------------------------------------------------------------------------
# On the control plane.


def _explainable(kubectl: Kubectl, kind: str, *, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while kubectl("explain", f"{kind}.spec", check=False).returncode != 0:
        if time.monotonic() > deadline:
            pytest.fail(f"{kind} missing from the served OpenAPI document after {timeout:.0f}s")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def published(installed_crds: list[str], controlplane: ControlPlane) -> None:
    """Wait until both kinds are in the served OpenAPI document.

    Established only means the REST endpoints work; kubectl's strict field validation and ``explain`` read
    the OpenAPI document, which the API server rebuilds a moment later.
    """
    kubectl = controlplane.kubectl()
    for kind in ("vmclockpolicy", "zstackconnection"):
        _explainable(kubectl, kind)


@pytest.mark.parametrize("plural", ["vmclockpolicies", "zstackconnections"])
def test_crd_is_established_and_structural(installed_crds: list[str], kubectl: Kubectl, plural: str) -> None:
    crd = kubectl.json("get", "crd", f"{plural}.{GROUP}")
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True"
    assert conditions["NamesAccepted"] == "True"
    assert conditions.get("NonStructuralSchema", "False") == "False"


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("vmclockpolicy.spec.track", ["libvirt", "track='guest'", "wall", "next start", "Windows"]),
        ("vmclockpolicy.spec.connectionRef", ["same namespace", "no namespace field"]),
        ("vmclockpolicy.status.vms", ["keyed by uuid", "phase", "inventory", "pendingRestart"]),
        ("vmclockpolicy.status.vms.phase", ["InSync", "Conflict"]),
        ("vmclockpolicy.status.vms.inventory.platform", ["Windows platforms"]),
        (
            "vmclockpolicy.spec.selector",
            ["exactly one of selector and vmUuids", "AND", "excludeVmUuids alone"],
        ),
        ("vmclockpolicy.spec.selector.namePattern", ["win-*", '"?" exactly one', '"%"', "commas"]),
        ("vmclockpolicy.spec.selector.platforms", ["Windows", "WindowsVirtio", "Paravirtualization"]),
        ("vmclockpolicy.status.selector.omitted", ["left out of status.vms"]),
        (
            "vmclockpolicy.status.summary.pendingRestart",
            ["also those left out of status.vms", "next start or ZStack reboot", "maintenance window"],
        ),
        ("vmclockpolicy.status.pendingRestartSince", ["waited longest for a restart", "Effective"]),
        ("vmclockpolicy.status.conditions", ["Effective", "RestartPending", "TrackEffective"]),
        ("vmclockpolicy.status.connection.reason", ["Ready condition", "NotFound"]),
        ("vmclockpolicy.spec.restart", ["maintenanceWindow", "maxConcurrent", "pendingRestart", "Halted"]),
        ("vmclockpolicy.spec.restart.maintenanceWindow.schedule", ["5-field cron", "0 2 * * 6"]),
        ("vmclockpolicy.spec.restart.maintenanceWindow.duration", ["Go duration", "168h"]),
        ("zstackconnection.spec.credentialsSecretRef", ["accessKeyId", "no namespace field"]),
        ("zstackconnection.status.clockTrackStorage", ["ResourceConfig", "SystemTag"]),
    ],
)
def test_kubectl_explain_documents_the_api(
    published: None, kubectl: Kubectl, field: str, expected: list[str]
) -> None:
    shown = " ".join(kubectl("explain", field).stdout.split())
    missing = [text for text in expected if text not in shown]
    assert missing == [], shown


# --- examples and defaulting -------------------------------------------------------------------------------


def _get(kubectl: Kubectl, kind: str, name: str, namespace: str) -> Obj:
    obj: Obj = kubectl.json("get", kind, name, namespace=namespace)
    return obj


@pytest.mark.parametrize("example", EXAMPLE_FILES, ids=lambda p: p.name)
def test_each_example_applies_on_its_own(
    published: None, kubectl: Kubectl, namespace: str, example: Path
) -> None:
    kubectl("apply", "-f", str(example), namespace=namespace)
    doc = yaml.safe_load(example.read_text())
    stored = _get(kubectl, doc["kind"], doc["metadata"]["name"], namespace)
    assert stored["metadata"]["namespace"] == namespace


def test_examples_apply_with_kustomize_and_get_server_defaults(
    published: None, kubectl: Kubectl, namespace: str
) -> None:
    kubectl("apply", "-k", str(EXAMPLES), namespace=namespace)

    assert set(_get(kubectl, "secret", "zstack-credentials", namespace)["data"]) == {
        "accountName",
        "password",
    }
    connection = _get(kubectl, "zstackconnection", "default", namespace)["spec"]
    assert connection["tls"] == {"insecureSkipVerify": False}
    windows = _get(kubectl, "vmclockpolicy", "windows-guest-clock", namespace)["spec"]
    assert (windows["managementPolicy"], windows["deletionPolicy"]) == ("Enforce", "Restore")
    linux = _get(kubectl, "vmclockpolicy", "linux-observe", namespace)["spec"]
    assert linux["connectionRef"] == {"name": "default"}
    assert (linux["managementPolicy"], linux["deletionPolicy"]) == ("Observe", "Orphan")


def test_minimal_objects_get_every_default(published: None, kubectl: Kubectl, namespace: str) -> None:
    connection = _connection(tls={"caBundleRef": {"kind": "ConfigMap", "name": "zstack-ca"}})
    kubectl.apply([_policy(), connection], namespace=namespace)

    assert _get(kubectl, "vmclockpolicy", "policy", namespace)["spec"] == {
        "track": "guest",
        "vmUuids": [_vm_uuid(1), _vm_uuid(2)],
        "connectionRef": {"name": "default"},
        "managementPolicy": "Enforce",
        "deletionPolicy": "Orphan",
    }
    assert _get(kubectl, "zstackconnection", "conn", namespace)["spec"] == {
        "endpoint": "https://zstack.example:8080",
        "contextPath": "/zstack",
        "credentialsSecretRef": {"name": "creds"},
        "tls": {
            "caBundleRef": {"kind": "ConfigMap", "name": "zstack-ca", "key": "ca.crt"},
            "insecureSkipVerify": False,
        },
        "maxConcurrentRequests": 16,
        "requestTimeoutSeconds": 30,
        "resyncIntervalSeconds": 300,
    }


def test_boundary_values_are_accepted(published: None, kubectl: Kubectl, namespace: str) -> None:
    """The other side of the rejection table: the limits themselves are valid."""
    policy = _policy(vmUuids=[_vm_uuid(i) for i in range(1000)], resyncIntervalSeconds=86400)
    policy["spec"].update(track="host", managementPolicy="Observe", deletionPolicy="Orphan")
    lowest = _connection(maxConcurrentRequests=1, requestTimeoutSeconds=1, resyncIntervalSeconds=10)
    highest = _connection(maxConcurrentRequests=50, requestTimeoutSeconds=600, resyncIntervalSeconds=86400)
    highest["metadata"]["name"] = "conn-max"
    highest["spec"].update(endpoint="http://10.0.0.5:8080/custom/zstack", contextPath="/")
    kubectl.apply([policy, lowest, highest], namespace=namespace)
    assert len(_get(kubectl, "vmclockpolicy", "policy", namespace)["spec"]["vmUuids"]) == 1000


def test_a_rolling_restart_gets_its_defaults(published: None, kubectl: Kubectl, namespace: str) -> None:
    window = {"schedule": "*/30 1-3 1,15 * 0-6", "duration": "1h30m"}
    kubectl.apply([_policy(restart={"policy": "Rolling", "maintenanceWindow": window})], namespace=namespace)
    assert _get(kubectl, "vmclockpolicy", "policy", namespace)["spec"]["restart"] == {
        "policy": "Rolling",
        "maintenanceWindow": {**window, "timeZone": "UTC"},
        "maxConcurrent": 1,
        "onlyRunning": True,
    }


GOOD_SELECTORS = [
    {"platforms": ["Windows", "WindowsVirtio"]},
    {"zoneUuids": [_vm_uuid(1)], "namePattern": "win-*", "excludeVmUuids": [_vm_uuid(2)]},
    {"clusterUuids": [_vm_uuid(3)]},
    {"namePattern": "*"},
    {"namePattern": "db_?%!~ 1*"},  # %, _ and lone !, ~ are not operators: matched literally
    {"userTags": ["clock", "tier::gold"]},
    {
        "platforms": list(limits.PLATFORMS),
        "zoneUuids": [_vm_uuid(i) for i in range(limits.MAX_ZONE_UUIDS)],
        "clusterUuids": [_vm_uuid(i) for i in range(limits.MAX_CLUSTER_UUIDS)],
        "namePattern": "界" * limits.MAX_NAME_PATTERN,
        "userTags": [f"{i}" + "界" * (limits.MAX_USER_TAG_LENGTH - 1) for i in range(limits.MAX_USER_TAGS)],
        "excludeVmUuids": [_vm_uuid(i) for i in range(limits.MAX_EXCLUDED_VMS)],
    },
]


def test_good_selectors_are_accepted_as_written(published: None, kubectl: Kubectl, namespace: str) -> None:
    for index, selector in enumerate(GOOD_SELECTORS):
        policy = _selector_policy(**selector)
        policy["metadata"]["name"] = f"selector-{index}"
        kubectl.apply(policy, namespace=namespace)
        stored = _get(kubectl, "vmclockpolicy", f"selector-{index}", namespace)["spec"]
        assert stored["selector"] == selector
        assert "vmUuids" not in stored


def test_status_in_a_main_resource_write_is_ignored(
    published: None, kubectl: Kubectl, namespace: str
) -> None:
    """The status subresource is on: only the operator's writes to /status change status."""
    policy = _policy()
    policy["status"] = {"summary": {"total": 2}}
    kubectl.apply(policy, namespace=namespace)
    assert "status" not in _get(kubectl, "vmclockpolicy", "policy", namespace)


# --- rejections at admission ------------------------------------------------------------------------------


def _without(base: Obj, path: str) -> Obj:
    """A deep copy of ``base`` with the field at the dotted ``path`` removed."""
    obj = copy.deepcopy(base)
    *parents, leaf = path.split(".")
    node = obj
    for key in parents:
        node = node[key]
    del node[leaf]
    return obj


_CA = {"kind": "ConfigMap", "name": "zstack-ca"}

INVALID = [
    ("track-unknown", _policy(track="wall"), "spec.track"),
    ("track-capitalised", _policy(track="Guest"), "spec.track"),
    ("track-integer", _policy(track=1), "spec.track"),
    ("track-missing", _without(_policy(), "spec.track"), "spec.track"),
    ("spec-missing", _without(_policy(), "spec"), "spec"),
    ("uuid-uppercase", _policy(vmUuids=["6262EB44A272424CB73192A589996EC2"]), "spec.vmUuids[0]"),
    ("uuid-short", _policy(vmUuids=["6262eb44a272424cb73192a589996ec"]), "spec.vmUuids[0]"),
    ("uuid-dashed", _policy(vmUuids=["6262eb44-a272-424c-b731-92a589996ec2"]), "spec.vmUuids[0]"),
    ("uuid-duplicate", _policy(vmUuids=[_vm_uuid(7), _vm_uuid(8), _vm_uuid(7)]), "spec.vmUuids[2]"),
    ("uuids-empty", _policy(vmUuids=[]), "spec.vmUuids"),
    ("uuids-1001", _policy(vmUuids=[_vm_uuid(i) for i in range(1001)]), "spec.vmUuids"),
    ("uuids-not-a-list", _policy(vmUuids=_vm_uuid(1)), "spec.vmUuids"),
    ("uuids-missing", _without(_policy(), "spec.vmUuids"), "spec.vmUuids"),
    ("policy-unknown-field", _policy(trackk="guest"), "spec.trackk"),
    ("selector-and-uuids", _policy(selector={"platforms": ["Windows"]}), "spec.selector"),
    ("selector-empty", _selector_policy(), "spec.selector"),
    ("selector-only-excludes", _selector_policy(excludeVmUuids=[_vm_uuid(1)]), "spec.selector"),
    ("selector-unknown-field", _selector_policy(platform=["Windows"]), "spec.selector.platform"),
    ("selector-platform-lowercase", _selector_policy(platforms=["windows"]), "spec.selector.platforms[0]"),
    (
        "selector-platform-unknown",
        _selector_policy(platforms=["Linux", "macOS"]),
        "spec.selector.platforms[1]",
    ),
    ("selector-platform-twice", _selector_policy(platforms=["Linux", "Linux"]), "spec.selector.platforms[1]"),
    ("selector-platforms-empty", _selector_policy(platforms=[]), "spec.selector.platforms"),
    (
        "selector-zone-uppercase",
        _selector_policy(zoneUuids=["ABCDEF" + _vm_uuid(1)[6:]]),
        "spec.selector.zoneUuids[0]",
    ),
    (
        "selector-zone-dashed",
        _selector_policy(zoneUuids=["6262eb44-a272-424c-b731-92a589996ec2"]),
        "spec.selector.zoneUuids[0]",
    ),
    (
        "selector-zones-33",
        _selector_policy(zoneUuids=[_vm_uuid(i) for i in range(33)]),
        "spec.selector.zoneUuids",
    ),
    ("selector-cluster-short", _selector_policy(clusterUuids=["abc"]), "spec.selector.clusterUuids[0]"),
    (
        "selector-exclude-bad",
        _selector_policy(platforms=["Linux"], excludeVmUuids=["x"]),
        "spec.selector.excludeVmUuids[0]",
    ),
    ("glob-equals", _selector_policy(namePattern="a=b"), "spec.selector.namePattern"),
    ("glob-greater", _selector_policy(namePattern="x>y"), "spec.selector.namePattern"),
    ("glob-less-equal", _selector_policy(namePattern="x<=y"), "spec.selector.namePattern"),
    ("glob-not-equal", _selector_policy(namePattern="a!=b"), "spec.selector.namePattern"),
    ("glob-in", _selector_policy(namePattern="a?=b"), "spec.selector.namePattern"),
    ("glob-comma", _selector_policy(namePattern="win,*"), "spec.selector.namePattern"),
    ("glob-tab", _selector_policy(namePattern="win\t*"), "spec.selector.namePattern"),
    ("glob-empty", _selector_policy(namePattern=""), "spec.selector.namePattern"),
    (
        "glob-too-long",
        _selector_policy(namePattern="w" * (limits.MAX_NAME_PATTERN + 1)),
        "spec.selector.namePattern",
    ),
    ("user-tag-operator", _selector_policy(userTags=["ok", "tier~=gold"]), "spec.selector.userTags[1]"),
    ("user-tag-comma", _selector_policy(userTags=["a,b"]), "spec.selector.userTags[0]"),
    ("user-tag-quote", _selector_policy(userTags=["o'neil"]), "spec.selector.userTags[0]"),
    ("user-tag-backslash", _selector_policy(userTags=["a\\b"]), "spec.selector.userTags[0]"),
    ("glob-quote", _selector_policy(namePattern="o'*"), "spec.selector.namePattern"),
    (
        "user-tag-too-long",
        _selector_policy(userTags=["t" * (limits.MAX_USER_TAG_LENGTH + 1)]),
        "spec.selector.userTags[0]",
    ),
    ("user-tags-9", _selector_policy(userTags=[f"t{i}" for i in range(9)]), "spec.selector.userTags"),
    (
        "restore-with-observe",
        _policy(managementPolicy="Observe", deletionPolicy="Restore"),
        "spec.deletionPolicy",
    ),
    ("management-policy-lowercase", _policy(managementPolicy="enforce"), "spec.managementPolicy"),
    ("deletion-policy-delete", _policy(deletionPolicy="Delete"), "spec.deletionPolicy"),
    (
        "connection-ref-cross-namespace",
        _policy(connectionRef={"name": "default", "namespace": "other"}),
        "spec.connectionRef.namespace",
    ),
    ("connection-ref-bad-name", _policy(connectionRef={"name": "Bad_Name"}), "spec.connectionRef.name"),
    ("policy-resync-too-short", _policy(resyncIntervalSeconds=9), "spec.resyncIntervalSeconds"),
    ("restart-policy-unknown", _policy(restart={"policy": "Always"}), "spec.restart.policy"),
    (
        "restart-rolling-without-window",
        _policy(restart={"policy": "Rolling"}),
        "spec.restart.maintenanceWindow",
    ),
    (
        "restart-schedule-four-fields",
        _policy(
            restart={"policy": "Rolling", "maintenanceWindow": {"schedule": "0 2 * *", "duration": "4h"}}
        ),
        "spec.restart.maintenanceWindow.schedule",
    ),
    (
        "restart-duration-words",
        _policy(
            restart={
                "policy": "Rolling",
                "maintenanceWindow": {"schedule": "0 2 * * 6", "duration": "4 hours"},
            }
        ),
        "spec.restart.maintenanceWindow.duration",
    ),
    (
        "restart-window-without-duration",
        _policy(restart={"policy": "Rolling", "maintenanceWindow": {"schedule": "0 2 * * 6"}}),
        "spec.restart.maintenanceWindow.duration",
    ),
    ("restart-max-concurrent-zero", _policy(restart={"maxConcurrent": 0}), "spec.restart.maxConcurrent"),
    ("restart-only-running-false", _policy(restart={"onlyRunning": False}), "spec.restart.onlyRunning"),
    ("policy-resync-string", _policy(resyncIntervalSeconds="300"), "spec.resyncIntervalSeconds"),
    ("endpoint-missing", _without(_connection(), "spec.endpoint"), "spec.endpoint"),
    ("endpoint-no-scheme", _connection(endpoint="zstack.example:8080"), "spec.endpoint"),
    ("endpoint-ftp", _connection(endpoint="ftp://zstack.example"), "spec.endpoint"),
    ("endpoint-no-host", _connection(endpoint="https:///zstack"), "spec.endpoint"),
    ("context-path-relative", _connection(contextPath="zstack"), "spec.contextPath"),
    (
        "credentials-cross-namespace",
        _connection(credentialsSecretRef={"name": "creds", "namespace": "kube-system"}),
        "spec.credentialsSecretRef.namespace",
    ),
    (
        "credentials-missing",
        _without(_connection(), "spec.credentialsSecretRef"),
        "spec.credentialsSecretRef",
    ),
    ("credentials-name-missing", _connection(credentialsSecretRef={}), "spec.credentialsSecretRef.name"),
    ("concurrency-zero", _connection(maxConcurrentRequests=0), "spec.maxConcurrentRequests"),
    ("concurrency-above-pool", _connection(maxConcurrentRequests=51), "spec.maxConcurrentRequests"),
    ("concurrency-string", _connection(maxConcurrentRequests="16"), "spec.maxConcurrentRequests"),
    ("timeout-too-long", _connection(requestTimeoutSeconds=601), "spec.requestTimeoutSeconds"),
    ("connection-resync-too-long", _connection(resyncIntervalSeconds=86401), "spec.resyncIntervalSeconds"),
    (
        "ca-bundle-bad-kind",
        _connection(tls={"caBundleRef": {**_CA, "kind": "Namespace"}}),
        "spec.tls.caBundleRef.kind",
    ),
    ("ca-bundle-no-name", _connection(tls={"caBundleRef": {"kind": "Secret"}}), "spec.tls.caBundleRef.name"),
    (
        "ca-bundle-bad-key",
        _connection(tls={"caBundleRef": {**_CA, "key": "ca crt"}}),
        "spec.tls.caBundleRef.key",
    ),
    (
        "ca-bundle-and-skip-verify",
        _connection(tls={"caBundleRef": _CA, "insecureSkipVerify": True}),
        "spec.tls.insecureSkipVerify",
    ),
    ("skip-verify-string", _connection(tls={"insecureSkipVerify": "yes"}), "spec.tls.insecureSkipVerify"),
    ("connection-unknown-field", _connection(insecure=True), "spec.insecure"),
]


@pytest.mark.parametrize(
    ("manifest", "field"), [case[1:] for case in INVALID], ids=[case[0] for case in INVALID]
)
def test_invalid_manifest_is_rejected_naming_the_field(
    published: None, kubectl: Kubectl, namespace: str, manifest: Obj, field: str
) -> None:
    result = kubectl("apply", "-f", "-", input=json.dumps(manifest), check=False, namespace=namespace)
    assert result.returncode != 0, result.stdout
    # The API server writes `spec.x: Invalid value ...`; strict decoding writes `unknown field "spec.x"`.
    assert f"{field}: " in result.stderr or f'"{field}"' in result.stderr
    listed = kubectl("get", manifest["kind"], "-o", "name", namespace=namespace).stdout
    assert listed == ""


# --- status round trip ------------------------------------------------------------------------------------

_PHASES = ["InSync", "Applied", "Drifted", "Pending", "Failed", "NotFound", "Conflict"]


def _hex(*parts: object) -> str:
    """A deterministic, realistic-looking ZStack UUID (32 hex characters)."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def _vm_status(index: int, uuid: str) -> Obj:
    """One fully populated status.vms[] entry with realistic field sizes."""
    windows = index % 3 != 0
    return {
        "uuid": uuid,
        "phase": _PHASES[index % len(_PHASES)],
        "observedTrack": "guest",
        "previousTrack": "host",
        "lastAppliedTime": f"2026-11-27T11:{index % 60:02d}:{index * 7 % 60:02d}Z",
        "pendingRestart": index % 2 == 0,
        **({"pendingRestartSince": "2026-11-27T10:00:00Z"} if index % 2 == 0 else {}),
        "message": "track applies at the next start or ZStack reboot"
        if windows
        else "platform Linux: ZStack stores the track but the RTC stays UTC, so it has no effect",
        "conflictWith": "tenant-a/windows-guest-clock",
        "error": {
            "code": "SYS.1006",
            "description": "An operation failed",
            "details": f"current vm instance state[Migrating] doesn't allow to proceed message[{index}]",
            "rootCauseCode": "VM.1010",
        },
        "inventory": {
            "uuid": uuid,
            "name": f"{'win' if windows else 'centos'}-app-{index:04d}",
            "state": "Running" if index % 5 else "Stopped",
            "platform": "Windows" if windows else "Linux",
            "hypervisorType": "KVM",
            "zoneUuid": _hex("zone"),
            "clusterUuid": _hex("cluster", index % 4),
            "hostUuid": _hex("host", index % 40),
            "cpuNum": 4,
            "memorySize": 8 * 1024**3,
            "lastOpDate": f"Nov 27, 2026 11:{index % 60:02d}:00 AM",
        },
    }


def _condition(kind: str, status: str, reason: str, message: str = "") -> Obj:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2026-11-27T11:45:00Z",
        "observedGeneration": 1,
    }


def _policy_status(uuids: list[str]) -> Obj:
    vms = [_vm_status(i, uuid) for i, uuid in enumerate(uuids)]
    counts = {phase: sum(vm["phase"] == phase for vm in vms) for phase in _PHASES}
    return {
        "observedGeneration": 1,
        "lastSyncTime": "2026-11-27T11:45:00Z",
        "lastHandledReconcileAt": "2026-11-27T11:44:00+00:00",
        "conditions": [
            _condition(
                "Ready", "False", "PartiallyApplied", f"{counts['Failed']} of {len(vms)} VMs failed: SYS.1006"
            ),
            _condition("Synced", "False", "ReconcileError", "SetVmClockTrack failed for some VMs: SYS.1006"),
            _condition("Effective", "False", "RestartPending", "500 VMs wait for a restart"),
        ],
        "pendingRestartSince": "2026-11-27T10:00:00Z",
        "summary": {
            "total": len(vms),
            "inSync": counts["InSync"] + counts["Applied"],
            "pending": counts["Pending"],
            "failed": counts["Failed"],
            "notFound": counts["NotFound"],
            "conflicted": counts["Conflict"],
            "drifted": counts["Drifted"],
            "pendingRestart": sum(vm["pendingRestart"] for vm in vms),
        },
        "vms": vms,
    }


def _patch_status(kubectl: Kubectl, namespace: str, ref: str, status: Obj, patch_dir: Path) -> None:
    """Merge-patch ``ref``'s /status from a file: a 1,000-VM patch is far beyond the 128 KiB argv limit."""
    patch_file = patch_dir / f"{ref.replace('/', '-')}-status.json"
    patch_file.write_text(json.dumps({"status": status}))
    kubectl(
        "patch",
        ref,
        "--subresource=status",
        "--type=merge",
        "--patch-file",
        str(patch_file),
        namespace=namespace,
    )


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))


def test_full_1000_vm_status_round_trips_unpruned(
    published: None, kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    """The worst case the contract allows: 1,000 VMs with every status field populated.

    Every field comes back (nothing pruned), and the stored object still has room for the second copy of
    the spec that kopf keeps in its last-handled-configuration annotation (as large as kubectl's
    last-applied one here). The list-map keyed by uuid makes managedFields list every VM's fields, which is
    why the whole object, not just the status, is measured.
    """
    uuids = [_hex("vm", i) for i in range(1000)]
    kubectl.apply(_policy(vmUuids=uuids), namespace=namespace)
    status = _policy_status(uuids)

    _patch_status(kubectl, namespace, "vmclockpolicy/policy", status, tmp_path)

    stored = kubectl.json("get", "vmclockpolicy", "policy", "--show-managed-fields", namespace=namespace)
    assert stored["status"] == status
    metadata = stored["metadata"]
    sizes = {
        "status": _json_size(status),
        "managedFields": _json_size(metadata["managedFields"]),
        "annotations": _json_size(metadata["annotations"]),
        "object": _json_size(stored),
    }
    print(
        "1,000-VM policy, bytes:",
        ", ".join(f"{part} {size} ({size / 1024:.1f} KiB)" for part, size in sizes.items()),
        f"; status is {sizes['status'] / STATUS_TARGET:.1f}x design.md's {STATUS_TARGET // 1024} KiB target",
    )
    assert sizes["object"] + sizes["annotations"] <= ETCD_REQUEST_LIMIT


def test_10000_vm_selector_status_round_trips_within_the_budget(
    published: None, kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    """A selector policy matching 10,000 VMs: status.vms holds its bound of compact entries (the VMs needing
    attention), the summary and status.selector count all of them, nothing is pruned, and the whole status
    stays within design.md's 256 KiB."""
    kubectl.apply(_selector_policy(platforms=["Windows", "WindowsVirtio"]), namespace=namespace)
    schema = _policy_schema()["properties"]["status"]["properties"]["vms"]
    listed = [
        {"uuid": _hex("vm", i), "phase": "Drifted", "observedTrack": "host", "previousTrack": "host"}
        for i in range(schema["maxItems"])
    ]
    status = {
        "observedGeneration": 1,
        "conditions": [
            _condition("Ready", "False", "Reconciling", f"applying the track to {len(listed)} of 10000 VMs"),
            _condition("Synced", "True", "ReconcileSuccess"),
        ],
        "summary": {
            "total": 10000,
            "inSync": 10000 - len(listed),
            "pending": 0,
            "failed": 0,
            "notFound": 0,
            "conflicted": 0,
            "drifted": len(listed),
            "pendingRestart": 0,
        },
        "selector": {
            "matched": 10000,
            "resolvedAt": "2026-11-27T11:45:00Z",
            "omitted": 10000 - len(listed),
            "message": "",
        },
        "connection": {"name": "default", "reason": "Connected"},
        "vms": listed,
    }

    _patch_status(kubectl, namespace, "vmclockpolicy/policy", status, tmp_path)

    assert _get(kubectl, "vmclockpolicy", "policy", namespace)["status"] == status
    print(f"10,000-VM selector policy with {len(listed)} listed VMs: status {_json_size(status)} bytes")
    assert _json_size(status) <= STATUS_TARGET
    ((row,),) = _tables(kubectl("get", "vmclockpolicy", "policy", namespace=namespace).stdout)
    _assert_cells(row, {"VMS": "10000", "IN-SYNC": str(10000 - len(listed)), "READY": "False"})


# --- printer columns --------------------------------------------------------------------------------------


def _tables(text: str) -> list[list[dict[str, str]]]:
    """kubectl's column output as rows of header -> cell; several kinds print one table each."""
    tables = []
    for block in text.strip().split("\n\n"):
        header, *rows = (re.split(r"\s{2,}", line.strip()) for line in block.splitlines())
        tables.append([dict(zip(header, row, strict=True)) for row in rows])
    return tables


def _header(text: str) -> list[str]:
    return re.split(r"\s{2,}", text.splitlines()[0].strip())


@pytest.fixture
def reported_objects(published: None, kubectl: Kubectl, namespace: str, tmp_path: Path) -> str:
    """A connection and a policy carrying a status the operator could have written; returns the namespace."""
    kubectl.apply([_connection(endpoint="http://127.0.0.1:8080"), _policy()], namespace=namespace)
    connection_status = {
        "observedGeneration": 1,
        "conditions": [_condition("Ready", "True", "Connected", "logged in as admin")],
        "version": "5.3.0",
        "clockTrackStorage": "ResourceConfig",
        "lastCheckTime": "2026-11-27T11:45:00Z",
    }
    policy_status = {
        "observedGeneration": 1,
        "conditions": [
            _condition("Ready", "False", "PartiallyApplied", "1 of 3 VMs failed: SYS.1006"),
            _condition("Synced", "True", "ReconcileSuccess"),
        ],
        "summary": {
            "total": 3,
            "inSync": 2,
            "pending": 0,
            "failed": 1,
            "notFound": 0,
            "conflicted": 0,
            "drifted": 0,
            "pendingRestart": 1,
        },
    }
    _patch_status(kubectl, namespace, "zstackconnection/conn", connection_status, tmp_path)
    _patch_status(kubectl, namespace, "vmclockpolicy/policy", policy_status, tmp_path)
    return namespace


@dataclass(frozen=True)
class Printed:
    """What ``kubectl get`` shows for one kind with the status ``reported_objects`` wrote."""

    columns: tuple[str, ...]  # the default view; -o wide adds REASON before AGE
    cells: dict[str, str]
    reason: str


POLICY = Printed(
    columns=("NAME", "TRACK", "VMS", "IN-SYNC", "FAILED", "PENDING-RESTART", "READY", "SYNCED", "AGE"),
    cells={
        "NAME": "policy",
        "TRACK": "guest",
        "VMS": "3",
        "IN-SYNC": "2",
        "FAILED": "1",
        "PENDING-RESTART": "1",
        "READY": "False",
        "SYNCED": "True",
    },
    reason="PartiallyApplied",
)
CONNECTION = Printed(
    columns=("NAME", "READY", "ENDPOINT", "VERSION", "AGE"),
    cells={"NAME": "conn", "READY": "True", "ENDPOINT": "http://127.0.0.1:8080", "VERSION": "5.3.0"},
    reason="Connected",
)


def _assert_cells(row: dict[str, str], expected: dict[str, str]) -> None:
    assert {column: row[column] for column in expected} == expected


@pytest.mark.parametrize(
    ("resource", "printed"),
    [(name, POLICY) for name in ("vmclockpolicies", "vmcp", "vmclock")]
    + [(name, CONNECTION) for name in ("zstackconnections", "zsc", "zstackconn")],
)
def test_printer_columns(kubectl: Kubectl, reported_objects: str, resource: str, printed: Printed) -> None:
    text = kubectl("get", resource, namespace=reported_objects).stdout
    assert tuple(_header(text)) == printed.columns
    ((row,),) = _tables(text)
    _assert_cells(row, printed.cells)

    wide = kubectl("get", resource, "-o", "wide", namespace=reported_objects).stdout
    assert tuple(_header(wide)) == (*printed.columns[:-1], "REASON", "AGE")
    ((row,),) = _tables(wide)
    _assert_cells(row, {**printed.cells, "REASON": printed.reason})


def test_zstack_category_lists_both_kinds(kubectl: Kubectl, reported_objects: str) -> None:
    tables = _tables(kubectl("get", "zstack", "-o", "wide", namespace=reported_objects).stdout)
    rows = {row["NAME"].split("/")[0]: row for (row,) in tables}
    assert set(rows) == {f"zstackconnection.{GROUP}", f"vmclockpolicy.{GROUP}"}
    _assert_cells(rows[f"vmclockpolicy.{GROUP}"], {**POLICY.cells, "NAME": f"vmclockpolicy.{GROUP}/policy"})
    _assert_cells(
        rows[f"zstackconnection.{GROUP}"], {**CONNECTION.cells, "NAME": f"zstackconnection.{GROUP}/conn"}
    )
