"""Kubeconfigs of one control plane (cluster, user and context all named ``vmclock-controlplane``).

Credentials are embedded as ``*-data`` so a file stays valid if copied, and kopf's kubeconfig login, the
kubernetes client, kubectl and kube-controller-manager all read it.  The admin's is the one clients get;
kube-controller-manager gets its own, with its own client certificate.
"""

from __future__ import annotations

import base64
from pathlib import Path

NAME = "vmclock-controlplane"


def _data(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def render(server: str, ca: Path, cert: Path, key: Path) -> str:
    return f"""\
apiVersion: v1
kind: Config
clusters:
- name: {NAME}
  cluster:
    server: {server}
    certificate-authority-data: {_data(ca)}
users:
- name: {NAME}
  user:
    client-certificate-data: {_data(cert)}
    client-key-data: {_data(key)}
contexts:
- name: {NAME}
  context:
    cluster: {NAME}
    user: {NAME}
current-context: {NAME}
"""


def write(path: Path, server: str, ca: Path, cert: Path, key: Path) -> None:
    """``render`` into ``path``, readable by its owner only (it holds a private key)."""
    path.write_text(render(server, ca, cert, key))
    path.chmod(0o600)
