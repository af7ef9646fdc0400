"""Acting as the operator's ServiceAccount, and running the operator the way the shipped Deployment would.

``kubectl auth can-i --as`` (``test_rbac_access``) asks the authorizer; a token kubeconfig goes further: the
real operator process authenticates as the ServiceAccount, so any verb its code paths (kopf's included) use
but the ClusterRole lacks shows up as a 403 in a real reconcile.  There is no kubelet, so the Deployment is
never run; instead its container ``args`` and ``env`` are replayed around the image's ``ENTRYPOINT`` from
the venv built by ``dockerfile_replay``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Collection
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

# A refused request as the API server, kopf or the operator's own client report it.  A bare 403 counts only
# as a status ("403 (Forbidden)", "403 from the Kubernetes API", "status=403", "HTTP 403"): fractions of
# seconds (".403"), ports (":40312") and counts ("'pendingRestart': 403") are not refusals.
PERMISSION_DENIED = re.compile(
    r"forbidden|not enough permissions|(?<![\w.:])403(?= \(| from)|\b(?:HTTP|status)[ =:\"']*403\b",
    re.IGNORECASE,
)


# The API server's 403 for new objects (kopf's Events) in a namespace being deleted: not a permission.
TERMINATING = "because it is being terminated"


def refusals(log: str, *, enabled: Collection[str]) -> list[str]:
    """The operator log's lines reporting a refused request: a permission its RBAC lacks. A connection in a
    namespace that has not opted in (`NamespaceNotEnabled`, the designed answer to a 403 there) counts only
    for the namespaces the test `enabled`: other tests' namespaces share the control plane."""
    return [
        line
        for line in log.splitlines()
        if PERMISSION_DENIED.search(line)
        and TERMINATING not in line
        and ("NamespaceNotEnabled" not in line or any(namespace in line for namespace in enabled))
    ]


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
class RenderedOperatorProcess(OperatorProcess):
    """``python -m vmclock`` from the test's venv with a rendered Deployment container's ``args`` and ``env``.

    The liveness and metrics listeners are moved from the pod's fixed ports to free loopback ports (several
    operators may share this machine) and `--allow-insecure-endpoints` is added for the plain-http simulator;
    every other argument (the namespaces it serves included) is passed exactly as rendered.  Downward-API
    variables (``fieldRef``) get the values the kubelet would give a pod named :attr:`pod_name` in
    :attr:`pod_namespace` running as :attr:`service_account`.
    """

    container: Obj
    pod_namespace: str
    service_account: str

    def entrypoint(self) -> list[str]:
        return [self.python, "-m", "vmclock", "run"]  # the image's ENTRYPOINT, from this venv

    def argv(self) -> list[str]:
        listeners = {"--liveness": self.liveness_url, "--metrics-port": str(self.metrics_port)}
        args: list[str] = self.container["args"]
        flags = {arg.partition("=")[0]: arg for arg in args if "=" in arg}
        if missing := sorted(listeners.keys() - flags.keys()):
            raise OperatorError(f"the Deployment's args have no {missing} (expected the --flag=value form)")
        rebound = {flags[flag]: f"{flag}={value}" for flag, value in listeners.items()}
        # The one added flag: the simulator serves plain http:// on loopback, which production refuses.
        insecure = "--allow-insecure-endpoints"
        return [*self.entrypoint(), *(rebound.get(arg, arg) for arg in args), insecure]

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
        """The test's environment (for its venv) with the container's env and only the token kubeconfig."""
        return {**super().environment(), **self.container_env(), "KUBECONFIG": str(self.kubeconfig)}


@dataclass(kw_only=True)
class DeployedOperatorProcess(RenderedOperatorProcess):
    """The image's ``ENTRYPOINT`` with the Deployment container's ``args`` and ``env``, in the image's env."""

    image: ReplayedImage

    def entrypoint(self) -> list[str]:
        return self.image.entrypoint

    def environment(self) -> dict[str, str]:
        """The image's env plus the container's, never the test's own environment."""
        return {**self.image.env, **self.container_env(), "KUBECONFIG": str(self.kubeconfig)}
