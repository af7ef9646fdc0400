"""The helm build's ldflags: the release and the Kubernetes version helm assumes offline (from its go.mod)."""

from __future__ import annotations

import pytest

from controlplane.build import BuildError
from helmbuild.build import kube_minor, ldflags

GOMOD = """module helm.sh/helm/v3

go 1.26.0

require (
\tk8s.io/apimachinery v0.36.2
\tk8s.io/client-go v0.36.2
)
"""


def test_the_assumed_kubernetes_minor_follows_client_go() -> None:
    assert kube_minor(GOMOD) == "36"
    flags = ldflags("v3.21.4", GOMOD).split()
    assert "helm.sh/helm/v3/internal/version.version=v3.21.4" in flags
    assert "helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=36" in flags
    assert "helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1" in flags


def test_a_go_mod_without_client_go_fails_the_build_step() -> None:
    with pytest.raises(BuildError, match="client-go"):
        kube_minor("module helm.sh/helm/v3\n")
