"""A real kube-apiserver + etcd + kube-controller-manager (and a matching kubectl) for tests and the sandbox.

The binaries are built from Go modules by ``tests/controlplane/controlplane build`` into a cache outside
the repository; this package finds them, starts them on loopback ports and tears them down without leaving
orphans.  It uses only the standard library so the executable works before the project venv exists.

Public API (shared by the executable, ``tests/conftest.py`` and the sandbox):

- :func:`resolve_binaries` / :func:`require_binaries` find the binaries (``TEST_ASSET_*``,
  ``KUBEBUILDER_ASSETS``, then the build cache) without building anything.
- :class:`ControlPlane` starts and stops one control plane; see its docstring.
- :class:`Kubectl` runs the matching kubectl against a kubeconfig.
"""

from .binaries import Binaries, MissingBinariesError, require_binaries, resolve_binaries
from .kubectl import Kubectl, KubectlError
from .plane import ControlPlane, ControlPlaneError
from .versions import Versions

__all__ = [
    "Binaries",
    "ControlPlane",
    "ControlPlaneError",
    "Kubectl",
    "KubectlError",
    "MissingBinariesError",
    "Versions",
    "require_binaries",
    "resolve_binaries",
]
