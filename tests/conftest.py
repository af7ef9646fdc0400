"""Shared fixtures: one real control plane per session, kubectl, a fresh namespace per test, the CRDs.

Tests under ``tests/integration/`` and ``tests/deploy/``, and any test that uses the ``controlplane``
fixture, are marked ``integration`` automatically; ``pytest -m 'not integration'`` runs the rest without
starting anything.  Tests that use helm are marked ``helm`` too, so ``make test`` runs them once helm is
built while the control-plane tests already run.  Missing binaries fail the session with the command that
builds them: a silent skip would let CI pass without running a single integration test.  Under
``-n N --dist loadfile`` a module stays on one worker, shared with other modules only as
``harness/workers.py`` says.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from xdist.remote import Producer

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
sys.path.insert(0, str(TESTS))  # the controlplane package is plain stdlib code next to this file

from controlplane import ControlPlane, Kubectl, MissingBinariesError, require_binaries  # noqa: E402
from controlplane.versions import requested_releases  # noqa: E402
from harness.workers import ModuleGroupScheduling, unlisted_users  # noqa: E402

INTEGRATION_DIRS = ("integration", "deploy")
CRD_ESTABLISHED_TIMEOUT = "60s"


def pytest_report_header() -> str:
    """Name the Kubernetes release up front: ``make compat`` runs the same tests on an older one."""
    k8s, etcd = requested_releases()
    return f"control plane: Kubernetes {k8s}, etcd {etcd} (K8S_VERSION / ETCD_VERSION)"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    fixtures_by_module: dict[str, set[str]] = {}
    for item in items:
        path = item.path.resolve()
        top = path.relative_to(TESTS).parts[0] if path.is_relative_to(TESTS) else ""
        fixtures = getattr(item, "fixturenames", ())
        if top in INTEGRATION_DIRS or "controlplane" in fixtures:
            item.add_marker(pytest.mark.integration)
        if "helm" in fixtures:
            item.add_marker(pytest.mark.helm)
        fixtures_by_module.setdefault(item.nodeid.split("::", 1)[0], set()).update(fixtures)
    unlisted = unlisted_users(fixtures_by_module)
    if unlisted:
        raise pytest.UsageError(
            f"list in tests/harness/workers.py WORKER_SHARED_FIXTURES: {'; '.join(unlisted)}"
        )


def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> ModuleGroupScheduling | None:
    """``--dist loadfile`` with the modules sharing a costly session fixture on one worker."""
    return ModuleGroupScheduling(config, log) if config.getvalue("dist") == "loadfile" else None


@pytest.fixture(scope="session")
def controlplane() -> Iterator[ControlPlane]:
    """A running etcd + kube-apiserver + kube-controller-manager shared by the whole session (admin
    kubeconfig: ``.kubeconfig``)."""
    try:
        binaries = require_binaries()
    except MissingBinariesError as error:
        pytest.fail(str(error), pytrace=False)
    plane = ControlPlane(binaries).start()
    try:
        _check_release(plane)
        yield plane
    finally:
        plane.stop()


def _check_release(plane: ControlPlane) -> None:
    """A run that asked for a release (``K8S_VERSION``) must be on it, never on binaries found elsewhere.

    ``KUBEBUILDER_ASSETS``/``TEST_ASSET_*`` take precedence over the build cache, so without this check a
    compatibility run could pass on the default release and claim an older one.
    """
    requested = os.environ.get("K8S_VERSION")
    reported = plane.server_version()
    if requested and reported != requested:
        pytest.fail(
            f"K8S_VERSION={requested} but the apiserver ({plane.binaries.kube_apiserver}) reports {reported}",
            pytrace=False,
        )


@pytest.fixture
def kubectl(controlplane: ControlPlane) -> Kubectl:
    """``kubectl("get", "ns")``, ``kubectl.json(...)``, ``kubectl.apply(obj_or_yaml, namespace=...)``."""
    return controlplane.kubectl()


@pytest.fixture
def namespace(kubectl: Kubectl, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new namespace named after the test.

    Deleted afterwards without waiting (the namespace controller empties it in the background; a
    finalizer nobody removes any more leaves it Terminating, harmless because no later test reuses the
    name), unless the test deleted it itself.
    """
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{slug}-{secrets.token_hex(3)}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


@pytest.fixture(scope="session")
def installed_crds(controlplane: ControlPlane) -> list[str]:
    """Server-side apply every ``crds/*.yaml`` and wait until each CRD is Established; returns CRD names."""
    files = sorted((REPO / "crds").glob("*.yaml"))
    if not files:
        pytest.fail(f"no CRD manifests in {REPO / 'crds'}", pytrace=False)
    kubectl = controlplane.kubectl()
    flags = [flag for path in files for flag in ("-f", str(path))]
    applied = kubectl("apply", "--server-side", "--force-conflicts", *flags, "-o", "name").stdout.split()
    crds = [ref for ref in applied if ref.startswith("customresourcedefinition.")]
    kubectl("wait", "--for", "condition=established", f"--timeout={CRD_ESTABLISHED_TIMEOUT}", *crds)
    return [ref.split("/", 1)[1] for ref in crds]
