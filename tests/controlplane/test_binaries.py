"""Binary lookup follows envtest's precedence and never trusts an unfinished build."""

from __future__ import annotations

from pathlib import Path

import pytest

from .binaries import (
    NAMES,
    STAMP,
    MissingBinariesError,
    asset_variable,
    cache_missing,
    require_binaries,
    resolve_binaries,
)
from .versions import Versions, cache_dir

RELEASE = Versions(k8s="v1.37.2", etcd="v3.7.3", go="go1.26.8")


def _install(directory: Path, names: tuple[str, ...] = NAMES) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / name).write_text("#!/bin/sh\n")
        (directory / name).chmod(0o755)
    return directory


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CONTROLPLANE_CACHE", str(tmp_path / "cache"))
    return cache_dir(RELEASE)


def test_asset_variable_names_follow_envtest() -> None:
    assert [asset_variable(name) for name in NAMES] == [
        "TEST_ASSET_KUBE_APISERVER",
        "TEST_ASSET_ETCD",
        "TEST_ASSET_KUBECTL",
        "TEST_ASSET_KUBE_CONTROLLER_MANAGER",
    ]


def test_cache_is_used_only_once_the_build_stamped_it(cache: Path) -> None:
    _install(cache)
    assert resolve_binaries(RELEASE, env={}) is None
    (cache / STAMP).write_text("{}")
    found = resolve_binaries(RELEASE, env={})
    assert found is not None
    assert found.assets_dir == cache
    assert found.env() == {"KUBEBUILDER_ASSETS": str(cache)}


def test_test_asset_beats_kubebuilder_assets_beats_cache(cache: Path, tmp_path: Path) -> None:
    _install(cache)
    (cache / STAMP).write_text("{}")
    assets = _install(tmp_path / "assets", ("kube-apiserver", "etcd"))
    kubectl = _install(tmp_path / "own", ("kubectl",)) / "kubectl"
    env = {"KUBEBUILDER_ASSETS": str(assets), "TEST_ASSET_KUBECTL": str(kubectl), "TEST_ASSET_ETCD": ""}
    found = resolve_binaries(RELEASE, env=env)
    assert found is not None
    assert found.paths() == (
        assets / "kube-apiserver",
        assets / "etcd",
        kubectl,
        cache / "kube-controller-manager",
    )
    assert found.assets_dir is None
    assert found.env()["TEST_ASSET_KUBECTL"] == str(kubectl)


def test_a_cache_stamped_before_the_controller_manager_lacks_only_it(cache: Path) -> None:
    assert cache_missing(RELEASE) == list(NAMES), "nothing counts before the stamp"
    _install(cache, ("kube-apiserver", "etcd", "kubectl"))
    (cache / STAMP).write_text("{}")
    assert cache_missing(RELEASE) == ["kube-controller-manager"]
    assert resolve_binaries(RELEASE, env={}) is None
    _install(cache, ("kube-controller-manager",))
    assert cache_missing(RELEASE) == []


def test_explicit_lookup_ignores_the_cache(cache: Path) -> None:
    _install(cache)
    (cache / STAMP).write_text("{}")
    assert resolve_binaries(env={}, use_cache=False) is None


def test_missing_binaries_fail_with_the_build_command(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("KUBEBUILDER_ASSETS", *map(asset_variable, NAMES)):
        monkeypatch.delenv(variable, raising=False)
    _install(cache, ("kube-apiserver", "etcd"))
    (cache / STAMP).write_text("{}")
    with pytest.raises(MissingBinariesError) as raised:
        require_binaries(RELEASE)
    assert str(raised.value).startswith("kubectl, kube-controller-manager for k8s-v1.37.2_etcd-v3.7.3_go-")
    assert "Run `tests/controlplane/controlplane build` (or `make controlplane`) first." in str(raised.value)
