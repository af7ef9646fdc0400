"""``controlplane build``: compile kube-apiserver, kubectl, kube-controller-manager and etcd from Go modules.

Why wrapper modules: ``k8s.io/kubernetes`` requires its staging modules at the placeholder v0.0.0 and maps
them with ``replace => ./staging/src/...``, which consumers ignore, and ``go install pkg@version`` refuses
modules with replace lines.  So each build makes a throw-away main module that pins every staging module at
its ``v0.N.M`` tag (read from the downloaded k8s go.mod, since the set changes between releases).  etcd gets
its own wrapper so MVS never unifies its grpc/otel versions with Kubernetes'.

The result is published atomically under a lock: binaries are built and verified in a work directory,
moved into the cache directory, and only then is the ``.complete`` stamp written.  Only what the cache
lacks is built: a cache stamped before a binary joined the set gains that one binary, and the binaries
already there (which running tests may be using) are never rewritten.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import gomod
from .binaries import STAMP, Binaries, cache_missing, resolve_binaries
from .versions import GO_ENV, Versions, cache_dir, cache_root, go_binary, versions_from_env

OUTPUT_TAIL_LINES = 40


class BuildError(RuntimeError):
    """One build step failed; the message names the step and ends with the tail of its output."""

    def __init__(self, step: str, detail: str) -> None:
        super().__init__(f"build step '{step}' failed:\n{detail}")
        self.step = step


def _log(message: str) -> None:
    print(f"controlplane build: {message}", file=sys.stderr, flush=True)


def _tail(text: str) -> str:
    return "\n".join(text.strip().splitlines()[-OUTPUT_TAIL_LINES:])


class _Builder:
    """Runs the steps of one build and keeps their timings for the summary."""

    def __init__(self, versions: Versions, work: Path) -> None:
        self.versions = versions
        self.work = work
        self.timings: dict[str, float] = {}
        self.env = {**os.environ, **GO_ENV}

    def run(self, step: str, args: list[str], cwd: Path) -> str:
        _log(f"{step} ...")
        started = time.monotonic()
        try:
            result = subprocess.run(
                args,
                cwd=cwd,
                env=self.env,
                capture_output=True,
                text=True,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except OSError as error:
            raise BuildError(step, str(error)) from error
        elapsed = time.monotonic() - started
        self.timings[step] = round(elapsed, 1)
        if result.returncode != 0:
            output = _tail(result.stdout + "\n" + result.stderr)
            raise BuildError(step, f"$ {' '.join(args)}\n(exit {result.returncode})\n{output}")
        _log(f"{step} done in {elapsed:.1f}s")
        return result.stdout

    def go(self, step: str, cwd: Path, *args: str) -> str:
        return self.run(step, [go_binary(), *args], cwd)

    def k8s(self, out: Path, names: list[str]) -> None:
        wrapper = self._fresh_module("k8s")
        release = self.versions.k8s
        download = json.loads(
            self.go(
                "download k8s.io/kubernetes go.mod",
                wrapper,
                "mod",
                "download",
                "-json",
                f"k8s.io/kubernetes@{release}",
            )
        )
        k8s_gomod = Path(download["GoMod"]).read_text()
        self.go(
            "pin staging modules", wrapper, "mod", "edit", *gomod.wrapper_edit_args(k8s_gomod, self.versions)
        )
        packages = [gomod.K8S_PACKAGES[name] for name in names]
        self.go("resolve k8s dependencies", wrapper, "get", *(f"{package}@{release}" for package in packages))
        self.go(
            f"compile {' + '.join(names)}",
            wrapper,
            "build",
            "-trimpath",
            gomod.NO_DWARF,
            "-ldflags",
            gomod.k8s_ldflags(self.versions),
            "-o",
            f"{out}/",
            *packages,
        )

    def etcd(self, out: Path) -> None:
        wrapper = self._fresh_module("etcd")
        self.go("resolve etcd dependencies", wrapper, "get", f"{gomod.ETCD_PACKAGE}@{self.versions.etcd}")
        self.go(
            "compile etcd",
            wrapper,
            "build",
            "-trimpath",
            gomod.NO_DWARF,
            "-ldflags",
            gomod.etcd_ldflags(),
            "-o",
            str(out / "etcd"),
            gomod.ETCD_PACKAGE,
        )

    def verify(self, out: Path, names: list[str]) -> None:
        """Run each binary once: a wrong ldflag or a broken link shows here, not in a test an hour later."""
        expectations = {
            "kube-apiserver": (["--version"], f"Kubernetes {self.versions.k8s}"),
            "kubectl": (["version", "--client"], f"Client Version: {self.versions.k8s}"),
            "kube-controller-manager": (["--version"], f"Kubernetes {self.versions.k8s}"),
            "etcd": (["--version"], f"etcd Version: {self.versions.etcd.removeprefix('v')}"),
        }
        for name in names:
            args, expected = expectations[name]
            output = self.run(f"verify {name}", [str(out / name), *args], out)
            if expected not in output:
                raise BuildError(f"verify {name}", f"expected {expected!r} in:\n{_tail(output)}")

    def _fresh_module(self, name: str) -> Path:
        wrapper = self.work / name
        shutil.rmtree(wrapper, ignore_errors=True)
        wrapper.mkdir(parents=True)
        self.go(f"init {name} wrapper module", wrapper, "mod", "init", f"controlplane.local/{name}")
        return wrapper


@contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """``flock`` so two concurrent builds (two shells, CI + a developer) never race on one cache dir."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _log(f"waiting for another build holding {path}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _publish(builder: _Builder, out: Path, target: Path, names: list[str], started: float) -> None:
    """Move ``names`` in (each ``os.replace`` is atomic), then (re)write the stamp that vouches for them.

    Only missing binaries are ever moved in, so a stamp already present keeps vouching for the others.
    """
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        os.replace(out / name, target / name)
    modules = {"k8s" if name in gomod.K8S_PACKAGES else "etcd" for name in names}
    for module in sorted(modules):
        for filename in ("go.mod", "go.sum"):
            shutil.copyfile(builder.work / module / filename, target / f"{module}.{filename}")
    stamp_path = target / STAMP
    previous = json.loads(stamp_path.read_text()) if stamp_path.is_file() else None
    build = {"binaries": names, "seconds": round(time.monotonic() - started, 1), "steps": builder.timings}
    stamp = {
        "k8s": builder.versions.k8s,
        "etcd": builder.versions.etcd,
        "go": builder.versions.go,
        # Each build that added binaries, oldest first (a stamp written before this list existed is kept
        # whole as the first entry).
        "builds": [*(previous.get("builds", [previous]) if previous else []), build],
    }
    temporary = target / f"{STAMP}.tmp"
    temporary.write_text(json.dumps(stamp, indent=2) + "\n")
    os.replace(temporary, stamp_path)


def build(versions: Versions | None = None) -> Binaries:
    """Return the binaries, building into the cache only what it lacks (nothing when it is complete)."""
    provided = resolve_binaries(use_cache=False)
    if provided is not None:
        _log("using binaries from TEST_ASSET_*/KUBEBUILDER_ASSETS; nothing to build")
        return provided
    versions = versions or versions_from_env()
    target = cache_dir(versions)
    with _exclusive_lock(cache_root() / f"{versions.cache_key}.lock"):
        missing = cache_missing(versions)
        if not missing:
            _log(f"cached in {target}")
            return _resolved(versions)
        _log(f"building {', '.join(missing)} into {target}")
        started = time.monotonic()
        work = cache_root() / "work" / versions.cache_key
        shutil.rmtree(work, ignore_errors=True)
        out = work / "out"
        out.mkdir(parents=True)
        builder = _Builder(versions, work)
        from_k8s = [name for name in missing if name in gomod.K8S_PACKAGES]
        if from_k8s:
            builder.k8s(out, from_k8s)
        if "etcd" in missing:
            builder.etcd(out)
        builder.verify(out, missing)
        _publish(builder, out, target, missing, started)
        shutil.rmtree(work, ignore_errors=True)
        with contextlib.suppress(OSError):
            work.parent.rmdir()  # only when no other version is building
        summary = ", ".join(f"{step} {seconds}s" for step, seconds in builder.timings.items())
        _log(f"built {', '.join(missing)} in {time.monotonic() - started:.1f}s ({summary})")
    return _resolved(versions)


def _resolved(versions: Versions) -> Binaries:
    binaries = resolve_binaries(versions)
    if binaries is None:
        raise BuildError("publish", f"binaries missing from {cache_dir(versions)} after publishing")
    return binaries
