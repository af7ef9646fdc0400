"""Fixtures for the deploy tests: kustomize rendering, a real install of deploy/, the replayed image."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from controlplane import ControlPlane, Kubectl, MissingBinariesError, require_binaries
from deploy.dockerfile_replay import ReplayedImage, replay_image
from deploy.kustomize import REPO, Obj, Render, apply_prerequisites, parse_objects


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
def installed_deploy(controlplane: ControlPlane, render: Render) -> list[Obj]:
    """``deploy/`` applied for real once per session (no pods run: there is no controller manager).

    Nothing is deleted afterwards: without a namespace controller ``vmclock-system`` would stay
    Terminating and block any later install in the same session.
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
