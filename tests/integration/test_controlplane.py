"""The shared control plane is the real thing: the built release, RBAC enforced, namespaces isolated."""

from __future__ import annotations

import json
import os

import pytest

from controlplane import ControlPlane, Kubectl
from controlplane.versions import DEFAULT_K8S_VERSION

EXPECTED_RELEASE = os.environ.get("K8S_VERSION", DEFAULT_K8S_VERSION)


def test_server_and_client_report_the_built_release(kubectl: Kubectl) -> None:
    reported = kubectl.json("version")
    _, minor, _ = EXPECTED_RELEASE.split(".")
    assert reported["serverVersion"]["gitVersion"] == EXPECTED_RELEASE
    assert (reported["serverVersion"]["major"], reported["serverVersion"]["minor"]) == ("1", minor)
    assert reported["clientVersion"]["gitVersion"] == EXPECTED_RELEASE


def test_anonymous_requests_are_forbidden(controlplane: ControlPlane) -> None:
    status, body = controlplane.get("/api/v1/namespaces", authenticated=False)
    assert status == 403
    failure = json.loads(body)
    assert failure["reason"] == "Forbidden"
    assert "system:anonymous" in failure["message"]


def test_rbac_denies_a_user_without_bindings(kubectl: Kubectl) -> None:
    kubectl("get", "secrets", "-A")  # the admin may: the denial below is RBAC, not a broken server
    denied = kubectl("--as=someone", "get", "secrets", "-A", check=False)
    assert denied.returncode != 0
    assert 'User "someone" cannot list resource "secrets"' in denied.stderr


def test_failed_kubectl_call_raises_with_its_stderr(kubectl: Kubectl) -> None:
    with pytest.raises(AssertionError, match='namespaces "no-such-namespace" not found'):
        kubectl("get", "namespace", "no-such-namespace")


@pytest.mark.parametrize("run", ["first", "second"])
def test_each_test_gets_a_fresh_namespace(kubectl: Kubectl, namespace: str, run: str) -> None:
    """Both runs create the same ConfigMap name: the second would fail if namespaces were shared."""
    assert kubectl.json("get", "namespace", namespace)["status"]["phase"] == "Active"
    kubectl("create", "configmap", "probe", f"--from-literal=run={run}", namespace=namespace)
    kubectl.apply(
        [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"run": run}}],
        namespace=namespace,
    )
    names = {
        item["metadata"]["name"] for item in kubectl.json("get", "configmaps", namespace=namespace)["items"]
    }
    assert names == {"probe", "applied"}


def test_installed_crds_are_established(installed_crds: list[str], kubectl: Kubectl) -> None:
    assert installed_crds
    for name in installed_crds:
        conditions = kubectl.json("get", "customresourcedefinition", name)["status"]["conditions"]
        established = next(condition for condition in conditions if condition["type"] == "Established")
        assert established["status"] == "True"
