"""The admin kubeconfig of one control plane (cluster, user and context all named ``vmclock-controlplane``).

Credentials are embedded as ``*-data`` so the file stays valid if copied, and kopf's kubeconfig login, the
kubernetes client and kubectl all read it.
"""

from __future__ import annotations

import base64
from pathlib import Path

from .certs import Pki

NAME = "vmclock-controlplane"


def _data(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def render(server: str, pki: Pki) -> str:
    return f"""\
apiVersion: v1
kind: Config
clusters:
- name: {NAME}
  cluster:
    server: {server}
    certificate-authority-data: {_data(pki.ca_cert)}
users:
- name: {NAME}
  user:
    client-certificate-data: {_data(pki.admin_cert)}
    client-key-data: {_data(pki.admin_key)}
contexts:
- name: {NAME}
  context:
    cluster: {NAME}
    user: {NAME}
current-context: {NAME}
"""


def write(path: Path, server: str, pki: Pki) -> None:
    path.write_text(render(server, pki))
    path.chmod(0o600)
