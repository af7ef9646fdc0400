"""Running the kubectl built alongside kube-apiserver, so client and server versions always match.

Failures raise :class:`KubectlError` (an ``AssertionError``), so a failed ``kubectl`` call inside a test
reads as a test failure with kubectl's stderr, not as an error in the fixture machinery.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

DEFAULT_TIMEOUT = 120.0
# kubectl <= 1.34 starts `kubectl wait` with a list at resourceVersion=0, which the API server answers from
# its watch cache; an object created a moment earlier can be missing there and the wait fails NotFound
# (seen in `make compat`).  From 1.35 kubectl streams the initial state with a consistent read
# (client-go's WatchListClient gate, default on); this turns the same on for older clients.
CLIENT_FEATURES = {"KUBE_FEATURE_WatchListClient": "true"}


class KubectlError(AssertionError):
    """kubectl exited non-zero; carries the command (never a credential) and its stderr."""


Manifest = str | Mapping[str, Any] | Sequence[Mapping[str, Any]]


class Kubectl:
    """``kubectl("get", "ns")`` with a fixed binary and kubeconfig; see :meth:`json` and :meth:`apply`."""

    def __init__(self, binary: Path, kubeconfig: Path, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.timeout = timeout

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, namespace: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        command = [str(self.binary), *(["--namespace", namespace] if namespace else []), *args]
        result = subprocess.run(
            command,
            input=input,
            capture_output=True,
            text=True,
            check=False,
            timeout=self.timeout,
            env={**CLIENT_FEATURES, **os.environ, "KUBECONFIG": str(self.kubeconfig)},
        )
        if check and result.returncode != 0:
            shown = " ".join(["kubectl", *command[1:]])
            raise KubectlError(f"`{shown}` exited {result.returncode}:\n{result.stderr.strip()}")
        return result

    def json(self, *args: str, namespace: str | None = None) -> Any:
        """Run with ``-o json`` and return the parsed document."""
        return json.loads(self(*args, "-o", "json", namespace=namespace).stdout)

    def apply(
        self, manifest: Manifest, namespace: str | None = None, *, server_side: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Apply YAML/JSON text, one object, or a list of objects (sent as a ``v1/List``)."""
        if isinstance(manifest, str):
            text = manifest
        elif isinstance(manifest, Mapping):
            text = json.dumps(manifest)
        else:
            text = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(manifest)})
        flags = ["--server-side", "--force-conflicts"] if server_side else []
        return self("apply", *flags, "-f", "-", input=text, namespace=namespace)
