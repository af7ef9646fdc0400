"""Fixtures for the deploy tests: kustomize rendering, a real install of deploy/, the replayed image, and
the operator running from that image as the installed ServiceAccount."""

from __future__ import annotations

import functools
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane import ControlPlane, Kubectl, MissingBinariesError, require_binaries
from deploy.dockerfile_replay import ReplayedImage, replay_image
from deploy.helm import HelmRender, helm_template
from deploy.kustomize import (
    OPERATOR,
    REPO,
    Obj,
    Render,
    apply_prerequisites,
    one,
    operator_container,
    parse_objects,
)
from deploy.serviceaccount import (
    POD_NAME,
    DeployedOperatorProcess,
    OperatorLogin,
    mint_token,
    write_token_kubeconfig,
)
from harness import SimulatorProcess, Tenant
from harness.credentials import RunCredentials
from harness.e2e import E2E, VmPool
from helmbuild import MissingHelmError, require_helm


@pytest.fixture(scope="session")
def render() -> Render:
    """``render(directory)``: what ``kubectl kustomize`` builds, with the kubectl matching the apiserver."""
    try:
        binaries = require_binaries()
    except MissingBinariesError as error:
        pytest.fail(str(error), pytrace=False)
    kustomize = Kubectl(binaries.kubectl, Path(os.devnull))  # rendering never talks to a server

    def run(directory: Path) -> list[Obj]:
        return parse_objects(kustomize("kustomize", str(directory)).stdout)

    return run


@pytest.fixture(scope="session")
def helm() -> Path:
    """The helm built from Go modules by ``tests/helmbuild/helm build`` (``make helm``)."""
    try:
        return require_helm()
    except MissingHelmError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def render_chart(helm: Path) -> HelmRender:
    """``render_chart(values=[...], namespace=..., chart=...)``: what ``helm template`` renders."""
    return functools.partial(helm_template, helm)


@pytest.fixture(scope="session")
def installed_deploy(controlplane: ControlPlane, render: Render) -> list[Obj]:
    """``deploy/`` applied for real once per session (no pods run: the test control plane has no
    scheduler or kubelet, only the namespace, garbage-collection and token controllers).

    Nothing is deleted afterwards: other tests of the session install into ``vmclock-system`` too.
    """
    objects = render(REPO / "deploy")
    kubectl = controlplane.kubectl()
    apply_prerequisites(kubectl, objects)
    kubectl.apply(objects, server_side=True)
    return objects


@pytest.fixture(scope="session")
def replayed_image(tmp_path_factory: pytest.TempPathFactory) -> ReplayedImage:
    """The Dockerfile's install steps replayed into a scratch root; ``.venv`` is the image's venv."""
    return replay_image(REPO / "Dockerfile", tmp_path_factory.mktemp("image"))


@pytest.fixture(scope="session")
def login(
    controlplane: ControlPlane, installed_deploy: list[Obj], tmp_path_factory: pytest.TempPathFactory
) -> OperatorLogin:
    account = one(installed_deploy, "ServiceAccount", OPERATOR)
    token = mint_token(controlplane.kubectl(), account)
    path = write_token_kubeconfig(
        controlplane.kubeconfig, token, tmp_path_factory.mktemp("serviceaccount") / "kubeconfig"
    )
    return OperatorLogin(account, token, path)


@pytest.fixture
def as_operator(controlplane: ControlPlane, login: OperatorLogin) -> Kubectl:
    """kubectl authenticated only by the ServiceAccount token."""
    return Kubectl(controlplane.kubectl_path, login.kubeconfig)


@pytest.fixture
def credentials() -> RunCredentials:
    return RunCredentials()


@pytest.fixture
def simulator(tmp_path: Path, credentials: RunCredentials) -> Iterator[SimulatorProcess]:
    with SimulatorProcess(
        log_path=tmp_path / "simulator.log",
        vms=20,
        seed=secrets.randbelow(1_000_000),
        accounts=credentials.simulator_accounts,
    ) as sim:
        yield sim


@pytest.fixture
def operator(
    installed_deploy: list[Obj], replayed_image: ReplayedImage, login: OperatorLogin, tmp_path: Path
) -> Iterator[DeployedOperatorProcess]:
    """The installed Deployment's container, run from the replayed image as the ServiceAccount only."""
    with DeployedOperatorProcess(
        log_path=tmp_path / "operator.log",
        kubeconfig=login.kubeconfig,
        pod_name=POD_NAME,
        image=replayed_image,
        cwd=replayed_image.root,
        container=operator_container(installed_deploy),
        pod_namespace=login.account["metadata"]["namespace"],
        service_account=login.account["metadata"]["name"],
    ) as process:
        yield process


@pytest.fixture
def e2e(
    simulator: SimulatorProcess,
    operator: DeployedOperatorProcess,
    credentials: RunCredentials,
    kubectl: Kubectl,
    namespace: str,
) -> E2E:
    return E2E(simulator, operator, credentials, VmPool(simulator.admin.vms()), Tenant(kubectl, namespace))
