"""The Prometheus installer: a clear error when nothing is installed, and no unpacking of a package whose
checksum differs from the pin (apt-get is replaced by a script that serves a tampered .deb)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from promtools import MissingPrometheusError, cache_dir, install, require


def test_missing_binaries_name_the_command_that_installs_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(MissingPrometheusError, match="run `make prometheus`"):
        require()


def test_a_package_with_another_checksum_is_never_unpacked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    apt_get = fake_bin / "apt-get"
    apt_get.write_text(
        '#!/bin/sh\necho "not the pinned package" > prometheus_2.42.0+ds-5+deb12u1_amd64.deb\n'
    )
    apt_get.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(RuntimeError, match="refusing to unpack it"):
        install()
    assert not cache_dir().exists()
    with pytest.raises(MissingPrometheusError):
        require()
