"""Acting as the operator's ServiceAccount, and running the operator the way the shipped Deployment would.

``kubectl auth can-i --as`` (``test_rbac_access``) asks the authorizer; a token kubeconfig goes further: the
real operator process authenticates as the ServiceAccount, so any verb its code paths (kopf's included) use
but the ClusterRole lacks shows up as a 403 in a real reconcile.  There is no kubelet, so the Deployment is
never run; instead its container ``args`` and ``env`` are replayed around the image's ``ENTRYPOINT`` from
the venv built by ``dockerfile_replay``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import yaml

from controlplane import Kubectl
from deploy.dockerfile_replay import ReplayedImage
from deploy.kustomize import OPERATOR, Obj
from harness import OperatorError, OperatorProcess

TOKEN_DURATION = "1h"
POD_NAME = f"{OPERATOR}-sa-{secrets.token_hex(3)}"
TENANT_ROLE = "vmclock-tenant"


def identity(account: Obj) -> str:
    """The user name the API server gives the ServiceAccount's tokens."""
    return f"system:serviceaccount:{account['metadata']['namespace']}:{account['metadata']['name']}"


@dataclass(frozen=True)
class OperatorLogin:
    """The ServiceAccount, a token of it, and a kubeconfig holding only that token."""

    account: Obj
    token: str
    kubeconfig: Path

    @property
    def user(self) -> str:
        return identity(self.account)


def enable_namespace(admin: Kubectl, namespace: str, account: Obj) -> None:
    """What a namespace's owner does to opt in (design.md §6.5): bind ``vmclock-tenant`` to the operator."""
    subject = f"{account['metadata']['namespace']}:{account['metadata']['name']}"
    admin(
        "create",
        "rolebinding",
        TENANT_ROLE,
        f"--clusterrole={TENANT_ROLE}",
        f"--serviceaccount={subject}",
        namespace=namespace,
    )


def mint_token(admin: Kubectl, account: Obj) -> str:
    """A bound token for the ServiceAccount (TokenRequest API), as the kubelet would project into the pod."""
    result = admin(
        "create",
        "token",
        account["metadata"]["name"],
        f"--duration={TOKEN_DURATION}",
        namespace=account["metadata"]["namespace"],
    )
    return result.stdout.strip()


def write_token_kubeconfig(admin_kubeconfig: Path, token: str, path: Path) -> Path:
    """A kubeconfig with the admin kubeconfig's server and CA but only ``token`` as credentials.

    No client certificate is carried over, so every request is authenticated as the token's subject.
    """
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    contexts = {item["name"]: item["context"] for item in admin["contexts"]}
    clusters = {item["name"]: item["cluster"] for item in admin["clusters"]}
    cluster = clusters[contexts[admin["current-context"]]["cluster"]]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "target",
                "cluster": {
                    "server": cluster["server"],
                    "certificate-authority-data": cluster["certificate-authority-data"],
                },
            }
        ],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "target", "user": "operator"}}],
        "current-context": "operator",
    }
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass(kw_only=True)
class DeployedOperatorProcess(OperatorProcess):
    """The image's ``ENTRYPOINT`` with the Deployment container's ``args`` and ``env``, in the image's env.

    The liveness and metrics listeners are moved from the pod's fixed ports to free loopback ports (several
    operators may share this machine) and `--allow-insecure-endpoints` is added for the plain-http simulator;
    every other argument is passed exactly as rendered.  Downward-API
    variables (``fieldRef``) get the values the kubelet would give a pod named :attr:`pod_name` in
    :attr:`pod_namespace` running as :attr:`service_account`.
    """

    image: ReplayedImage
    container: Obj
    pod_namespace: str
    service_account: str

    def argv(self) -> list[str]:
        listeners = {"--liveness": self.liveness_url, "--metrics-port": str(self.metrics_port)}
        args: list[str] = self.container["args"]
        flags = {arg.partition("=")[0]: arg for arg in args if "=" in arg}
        if missing := sorted(listeners.keys() - flags.keys()):
            raise OperatorError(f"the Deployment's args have no {missing} (expected the --flag=value form)")
        rebound = {flags[flag]: f"{flag}={value}" for flag, value in listeners.items()}
        # The one added flag: the simulator serves plain http:// on loopback, which production refuses.
        insecure = "--allow-insecure-endpoints"
        return [*self.image.entrypoint, *(rebound.get(arg, arg) for arg in args), insecure]

    def container_env(self) -> dict[str, str]:
        downward = {
            "metadata.name": self.pod_name,
            "metadata.namespace": self.pod_namespace,
            "spec.serviceAccountName": self.service_account,
        }
        env = {}
        for variable in self.container.get("env", []):
            if "value" in variable:
                env[variable["name"]] = variable["value"]
            else:
                env[variable["name"]] = downward[variable["valueFrom"]["fieldRef"]["fieldPath"]]
        return env

    def environment(self) -> dict[str, str]:
        """The image's env plus the container's, never the test's own environment."""
        return {**self.image.env, **self.container_env(), "KUBECONFIG": str(self.kubeconfig)}
