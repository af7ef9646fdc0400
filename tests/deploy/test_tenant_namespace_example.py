"""examples/tenant-namespace/: the RoleBinding that opts a namespace in lets the installed ServiceAccount read
Secrets there (and nowhere else), and the ResourceQuota bounds how many connections and policies a tenant
makes the shared operator hold.

There is no controller manager, so the quota's first usage count (which its quota controller would write) is
written by the test; from then on the API server's quota admission counts and refuses by itself.
"""

from __future__ import annotations

import json

import yaml

from controlplane import Kubectl
from deploy.kustomize import REPO, Obj
from deploy.serviceaccount import OperatorLogin
from harness import connection

EXAMPLE = REPO / "examples" / "tenant-namespace"


def load(name: str) -> Obj:
    loaded: Obj = yaml.safe_load((EXAMPLE / name).read_text())
    return loaded


def may_get_secrets(kubectl: Kubectl, login: OperatorLogin, namespace: str) -> bool:
    args = ["auth", "can-i", "get", "secrets", f"--as={login.user}", "--namespace", namespace]
    return kubectl(*args, check=False).stdout.strip() == "yes"


def test_the_rolebinding_example_opts_in_the_namespace_it_is_applied_to(
    kubectl: Kubectl, login: OperatorLogin, namespace: str
) -> None:
    assert not may_get_secrets(kubectl, login, namespace)
    kubectl("apply", "-f", str(EXAMPLE / "rolebinding.yaml"), namespace=namespace)
    assert may_get_secrets(kubectl, login, namespace)
    assert not may_get_secrets(kubectl, login, "default")


def test_the_quota_example_refuses_connections_beyond_its_count(
    kubectl: Kubectl, namespace: str, installed_deploy: list[Obj]
) -> None:
    quota = load("resourcequota.yaml")
    hard = quota["spec"]["hard"]
    limit = int(hard["count/zstackconnections.vmclock.zstack.io"])
    kubectl("apply", "-f", str(EXAMPLE / "resourcequota.yaml"), namespace=namespace)
    status = {
        "status": {"hard": hard, "used": dict.fromkeys(hard, "0")}
    }  # the quota controller's first count
    name = quota["metadata"]["name"]
    kubectl(
        "patch",
        "resourcequota",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
        namespace=namespace,
    )

    endpoint = "https://zstack.invalid"
    for index in range(limit):
        kubectl.apply([connection(f"zs-{index}", endpoint, "creds")], namespace=namespace)
    one_more = json.dumps(connection("one-too-many", endpoint, "creds"))
    refused = kubectl("apply", "-f", "-", input=one_more, namespace=namespace, check=False)
    assert refused.returncode != 0
    assert f"exceeded quota: {name}" in refused.stderr
    assert "count/zstackconnections.vmclock.zstack.io" in refused.stderr
