"""The wrapper-module recipe: staging pins, go/godebug lines and version ldflags, from go.mod text."""

from __future__ import annotations

import pytest

from . import gomod
from .versions import VersionError, Versions

K8S_GOMOD = """\
module k8s.io/kubernetes

go 1.26.0

godebug default=go1.26

require (
\tk8s.io/api v0.0.0
\tk8s.io/streaming v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/streaming => ./staging/src/k8s.io/streaming
)

replace k8s.io/cri-streaming => ./staging/src/k8s.io/cri-streaming

replace github.com/example/fork => github.com/example/fork v1.2.3
"""
RELEASE = Versions(k8s="v1.37.2", etcd="v3.7.3", go="go1.26.8")


def test_staging_set_is_read_from_block_and_single_replace_lines() -> None:
    assert gomod.staging_modules(K8S_GOMOD) == ["k8s.io/api", "k8s.io/streaming", "k8s.io/cri-streaming"]


def test_wrapper_pins_each_staging_module_at_its_v0_tag_and_copies_go_and_godebug() -> None:
    assert gomod.wrapper_edit_args(K8S_GOMOD, RELEASE) == [
        "-go=1.26.0",
        "-godebug=default=go1.26",
        "-replace=k8s.io/api=k8s.io/api@v0.37.2",
        "-replace=k8s.io/streaming=k8s.io/streaming@v0.37.2",
        "-replace=k8s.io/cri-streaming=k8s.io/cri-streaming@v0.37.2",
    ]


@pytest.mark.parametrize("broken", ["module x\n", "module x\ngo 1.26.0\n"])
def test_unrecognised_gomod_is_an_error_not_an_empty_wrapper(broken: str) -> None:
    with pytest.raises(gomod.GoModError):
        gomod.wrapper_edit_args(broken, RELEASE)


def test_version_ldflags_stamp_both_version_packages() -> None:
    flags = gomod.k8s_ldflags(RELEASE).split(" -X ")
    assert flags[0] == "-s -w"
    stamped = dict(flag.split("=", 1) for flag in flags[1:])
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert stamped[f"{package}.gitVersion"] == "v1.37.2"
        assert (stamped[f"{package}.gitMajor"], stamped[f"{package}.gitMinor"]) == ("1", "37")
        assert stamped[f"{package}.gitTreeState"] == "clean"
        assert stamped[f"{package}.buildDate"] == "1970-01-01T00:00:00Z"
    assert len(stamped) == 12


def test_cache_key_names_every_input() -> None:
    assert RELEASE.cache_key == "k8s-v1.37.2_etcd-v3.7.3_go-go1.26.8"
    assert RELEASE.staging == "v0.37.2"


@pytest.mark.parametrize("k8s", ["1.37.2", "v1.37", "v1.37.2-rc.0"])
def test_non_release_versions_are_rejected(k8s: str) -> None:
    with pytest.raises(VersionError, match="K8S_VERSION"):
        Versions(k8s=k8s, etcd="v3.7.3", go="go1.26.8")
