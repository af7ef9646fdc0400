"""Helm built from Go modules into the cache beside the control plane (``tests/helmbuild/helm build``).

Public API: :func:`build` (build once, then a no-op) and :func:`require_helm` (find it, or fail with the
command that builds it). Standard library only, like ``tests/controlplane``, so it runs before the venv.
"""

from .build import HELM_VERSION, MissingHelmError, build, require_helm

__all__ = ["HELM_VERSION", "MissingHelmError", "build", "require_helm"]
