"""Choosing a Kubernetes release: its etcd, its own cache directory, and the command line that selects it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from .binaries import NAMES, asset_variable
from .versions import (
    DEFAULT_K8S_VERSION,
    VersionError,
    Versions,
    cache_dir,
    paired_etcd,
    release,
    requested_releases,
)

EXECUTABLE = Path(__file__).resolve().parent / "controlplane"


@pytest.mark.parametrize("typed", ["1.34.4", "v1.34.4", " 1.34.4\n"])
def test_release_accepts_the_version_with_or_without_v(typed: str) -> None:
    assert release(typed) == "v1.34.4"


@pytest.mark.parametrize(
    ("k8s", "etcd"),
    [("v1.34.4", "v3.6.16"), ("v1.36.3", "v3.6.16"), ("v1.37.2", "v3.7.3"), ("v1.38.0", "v3.7.3")],
)
def test_each_minor_gets_the_etcd_envtest_pairs_it_with(k8s: str, etcd: str) -> None:
    assert paired_etcd(k8s) == etcd


def test_pairing_rejects_a_version_that_is_not_a_release() -> None:
    with pytest.raises(VersionError, match=r"K8S_VERSION='1\.34'"):
        paired_etcd("1.34")


def test_requested_releases_default_then_env_then_explicit_etcd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("K8S_VERSION", raising=False)
    monkeypatch.delenv("ETCD_VERSION", raising=False)
    assert requested_releases() == (DEFAULT_K8S_VERSION, "v3.7.3")
    monkeypatch.setenv("K8S_VERSION", "v1.34.4")
    assert requested_releases() == ("v1.34.4", "v3.6.16")
    monkeypatch.setenv("ETCD_VERSION", "v3.6.13")
    assert requested_releases() == ("v1.34.4", "v3.6.13")


def test_two_releases_are_cached_side_by_side(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CONTROLPLANE_CACHE", str(tmp_path))
    new = cache_dir(Versions(k8s="v1.37.2", etcd="v3.7.3", go="go1.26.8"))
    old = cache_dir(Versions(k8s="v1.34.4", etcd="v3.6.16", go="go1.26.8"))
    assert new.parent == old.parent == tmp_path
    assert new != old


def test_kubernetes_option_selects_the_release_and_names_its_build_command(tmp_path: Path) -> None:
    """The option must reach the binary lookup: an unbuilt 1.34.4 is reported, not the cached default."""
    hidden = {"K8S_VERSION", "ETCD_VERSION", "KUBEBUILDER_ASSETS", *map(asset_variable, NAMES)}
    env = {key: value for key, value in os.environ.items() if key not in hidden}
    env["CONTROLPLANE_CACHE"] = str(tmp_path)
    result = subprocess.run(
        [str(EXECUTABLE), "env", "--kubernetes", "1.34.4"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "k8s-v1.34.4_etcd-v3.6.16_go-" in result.stderr
    assert "Run `tests/controlplane/controlplane build --kubernetes v1.34.4` first." in result.stderr
