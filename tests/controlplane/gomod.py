"""Reading ``k8s.io/kubernetes``'s go.mod and turning versions into ``go`` command arguments.

Pure functions (no I/O) so the parts of the build that are easy to get wrong are unit tested without Go.
"""

from __future__ import annotations

import re

from .versions import Versions

_GO_LINE = re.compile(r"^go\s+(\S+)\s*$", re.MULTILINE)
_GODEBUG_LINE = re.compile(r"^godebug\s+(\S+=\S+)\s*$", re.MULTILINE)
_STAGING_LINE = re.compile(r"^\s*(?:replace\s+)?(\S+)\s+=>\s+\./staging/src/(\S+)\s*$", re.MULTILINE)

K8S_PACKAGES = {
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kubectl": "k8s.io/kubernetes/cmd/kubectl",
    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
}
"""Binaries built in the ``k8s.io/kubernetes`` wrapper, by file name (``go build -o DIR/`` names each after
its package's last element)."""
ETCD_PACKAGE = "go.etcd.io/etcd/server/v3"
NO_DWARF = "-gcflags=all=-dwarf=false"
"""The binaries are linked with ``-s -w`` (no symbol table, no DWARF), so the compiler need not generate
DWARF either: about 12% less compile CPU (user time of a cold etcd build, 54.8 s -> 48.2 s), which is what
a cold ``make test`` on 2 cores is bound by."""
BUILD_DATE = "1970-01-01T00:00:00Z"  # fixed, so identical inputs give identical binaries
GIT_COMMIT = "0" * 40


class GoModError(ValueError):
    """The k8s go.mod does not look like one we know how to wrap."""


def go_directive(gomod: str) -> str:
    """The ``go`` line, copied into the wrapper because GODEBUG defaults follow the main module's line."""
    match = _GO_LINE.search(gomod)
    if match is None:
        raise GoModError("no 'go' directive in k8s.io/kubernetes go.mod")
    return match.group(1)


def godebug_directives(gomod: str) -> list[str]:
    """``godebug`` settings (e.g. ``default=go1.26``); consumers do not inherit them, so copy them."""
    return _GODEBUG_LINE.findall(gomod)


def staging_modules(gomod: str) -> list[str]:
    """Every module k8s maps to ``./staging/src/`` (their published go.mod requires them at v0.0.0)."""
    modules = [module for module, _ in _STAGING_LINE.findall(gomod)]
    if not modules:
        raise GoModError("no '=> ./staging/src/' replace lines in k8s.io/kubernetes go.mod")
    return modules


def wrapper_edit_args(gomod: str, versions: Versions) -> list[str]:
    """Arguments for one ``go mod edit`` that turns an empty module into a buildable k8s wrapper."""
    args = [f"-go={go_directive(gomod)}"]
    args += [f"-godebug={setting}" for setting in godebug_directives(gomod)]
    args += [f"-replace={module}={module}@{versions.staging}" for module in staging_modules(gomod)]
    return args


def k8s_ldflags(versions: Versions) -> str:
    """What ``hack/lib/version.sh`` stamps, so ``/version`` and ``kubectl version`` report the release.

    Set on both packages that carry version variables; ``-X`` on a symbol a binary does not link is
    ignored, so one flag set serves every binary in :data:`K8S_PACKAGES`.
    """
    major, minor, _ = versions.k8s_parts
    values = {
        "gitVersion": versions.k8s,
        "gitMajor": major,
        "gitMinor": minor,
        "gitCommit": GIT_COMMIT,
        "gitTreeState": "clean",
        "buildDate": BUILD_DATE,
    }
    packages = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
    stamps = [f"-X {package}.{name}={value}" for package in packages for name, value in values.items()]
    return " ".join(["-s", "-w", *stamps])


def etcd_ldflags() -> str:
    """etcd's version is a constant in its api module; only the commit is stamped, as etcd's build does."""
    return "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=gomodule"
