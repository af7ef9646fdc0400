"""kube-controller-manager does in the test control plane what it does in a cluster, as itself, on loopback.

Real binaries: namespace deletion, owner-reference garbage collection and ServiceAccount token Secrets are
each done by Kubernetes' own controllers (nothing here deletes or signs on their behalf).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import ssl
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from .binaries import require_binaries
from .kubectl import Kubectl
from .plane import ControlPlane
from .rundir import STOP_ORDER, RunDir

pytestmark = pytest.mark.integration

T = TypeVar("T")

COLLECTED_SECONDS = 90.0
"""The namespace controller re-checks a namespace held by finalizers about every 15 s, and the garbage
collector finds resources it did not know at start within its 30 s discovery resync; a loaded 2-core
machine needs the rest."""
LISTEN = "0A"  # TCP state in /proc/net/tcp*


def _eventually(probe: Callable[[], T], done: Callable[[T], bool], what: str) -> T:
    deadline = time.monotonic() + COLLECTED_SECONDS
    while not done(seen := probe()):
        assert time.monotonic() < deadline, f"no {what} within {COLLECTED_SECONDS:.0f}s; last seen: {seen}"
        time.sleep(0.5)
    return seen


def _configmap(name: str, **metadata: object) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **metadata}}


def _names(kubectl: Kubectl, resource: str, namespace: str) -> list[str]:
    items = kubectl.json("get", resource, namespace=namespace)["items"]
    return sorted(item["metadata"]["name"] for item in items)


def _exists(kubectl: Kubectl, *args: str) -> bool:
    return bool(kubectl("get", *args, "--ignore-not-found", "-o", "name").stdout.strip())


def test_a_deleted_namespace_is_emptied_held_by_a_finalizer_and_then_removed(kubectl: Kubectl) -> None:
    name = f"doomed-{secrets.token_hex(3)}"
    kubectl("create", "namespace", name)
    kubectl.apply([_configmap("plain"), _configmap("held", finalizers=["example.com/hold"])], namespace=name)

    kubectl("delete", "namespace", name, "--wait=false")

    def conditions() -> dict[str, str]:
        status = kubectl.json("get", "namespace", name)["status"]
        return {c["type"]: c["message"] for c in status.get("conditions", []) if c["status"] == "True"}

    held = _eventually(conditions, lambda seen: "NamespaceFinalizersRemaining" in seen, "finalizer condition")
    assert "example.com/hold in 1 resource instances" in held["NamespaceFinalizersRemaining"]
    assert _names(kubectl, "configmaps", name) == ["held"], "the rest of the content was deleted"
    release = '{"metadata":{"finalizers":null}}'
    kubectl("patch", "configmap", "held", "--type=merge", "-p", release, namespace=name)
    _eventually(lambda: _exists(kubectl, "namespace", name), lambda found: not found, "namespace removal")


def test_an_object_whose_owner_is_deleted_is_garbage_collected(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(_configmap("owner"), namespace=namespace)
    owner = kubectl.json("get", "configmap", "owner", namespace=namespace)["metadata"]
    reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["uid"]}
    kubectl.apply(
        [_configmap("owned", ownerReferences=[reference]), _configmap("bystander")], namespace=namespace
    )

    kubectl("delete", "configmap", "owner", namespace=namespace)

    _eventually(
        lambda: _names(kubectl, "configmaps", namespace),
        lambda names: "owned" not in names,
        "garbage collection of the owned ConfigMap",
    )
    assert "bystander" in _names(kubectl, "configmaps", namespace)


def test_a_service_account_token_secret_gets_a_token_the_apiserver_accepts(
    controlplane: ControlPlane, kubectl: Kubectl, namespace: str
) -> None:
    """The token controller signs with the key the apiserver verifies: both got the same SA key."""
    kubectl("create", "serviceaccount", "robot", namespace=namespace)
    annotations = {"kubernetes.io/service-account.name": "robot"}
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token"}
    kubectl.apply(
        {**secret, "metadata": {"name": "robot-token", "annotations": annotations}}, namespace=namespace
    )

    data = _eventually(
        lambda: kubectl.json("get", "secret", "robot-token", namespace=namespace).get("data") or {},
        lambda found: "token" in found,
        "token in the Secret",
    )
    token = base64.b64decode(data["token"]).decode()
    review = urllib.request.Request(
        f"{controlplane.server}/apis/authentication.k8s.io/v1/selfsubjectreviews",
        data=json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    context = ssl.create_default_context(cafile=str(controlplane.ca_file))
    with urllib.request.urlopen(review, context=context, timeout=10) as answer:
        user = json.load(answer)["status"]["userInfo"]
    assert user["username"] == f"system:serviceaccount:{namespace}:robot"


def test_the_controller_manager_is_its_own_user_not_a_superuser(controlplane: ControlPlane) -> None:
    own = Kubectl(controlplane.kubectl_path, RunDir(controlplane.directory).controller_manager_kubeconfig)
    user = json.loads(own("auth", "whoami", "-o", "json").stdout)["status"]["userInfo"]
    assert user["username"] == "system:kube-controller-manager"
    assert "system:masters" not in user.get("groups", [])
    # Its controllers delete as their own ServiceAccounts (--use-service-account-credentials), not as it.
    assert own("auth", "can-i", "delete", "configmaps", "-A", check=False).stdout.strip() == "no"


def _listening(pid: int) -> list[str]:
    """Local ``address:port`` (hex, as the kernel prints it) of every TCP socket ``pid`` listens on."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] == LISTEN and fields[9] in inodes:
                found.append(fields[1])
    return found


def test_every_daemon_listens_on_loopback_only(controlplane: ControlPlane) -> None:
    loopback = "0100007F:"  # 127.0.0.1, little-endian hex
    pids = controlplane.pids
    assert sorted(pids) == sorted(STOP_ORDER)
    for name, pid in pids.items():
        addresses = _listening(pid)
        assert addresses, f"{name} listens on nothing"
        assert all(address.startswith(loopback) for address in addresses), (name, addresses)


def test_stop_ends_every_daemon_with_sigterm() -> None:
    """Clients first, and no daemon needs the SIGKILL that follows ``stop_timeout``."""
    plane = ControlPlane(require_binaries()).start()
    codes = plane.stop()
    assert sorted(codes) == sorted(STOP_ORDER)
    assert all(code != -signal.SIGKILL for code in codes.values()), codes
