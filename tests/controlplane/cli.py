"""Command line of ``tests/controlplane/controlplane``: build | start | stop | env | run -- CMD.

Machine-readable ``KEY=value`` lines go to stdout (``set -a; eval "$(controlplane start)"; set +a``);
progress and errors go to stderr.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType

from .binaries import MissingBinariesError, require_binaries
from .build import BuildError, build
from .certs import CertificateError
from .plane import ControlPlane, ControlPlaneError, describe
from .rundir import RunDir, all_rundirs, reap_orphans
from .versions import DEFAULT_K8S_VERSION, VersionError, release

STOP_TIMEOUT = 10.0
FAILURES = (BuildError, CertificateError, ControlPlaneError, MissingBinariesError, VersionError, OSError)


class _Interrupted(Exception):
    """SIGTERM/SIGHUP reached ``run``: unwind through ``finally`` so the control plane is torn down."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _print_env(env: Mapping[str, str]) -> None:
    for key, value in env.items():
        print(f"{key}={shlex.quote(value)}")
    sys.stdout.flush()


def _say(message: str) -> None:
    print(f"controlplane: {message}", file=sys.stderr, flush=True)


def _cmd_build(_: argparse.Namespace) -> int:
    started = time.monotonic()
    binaries = build()
    _say(f"build finished in {time.monotonic() - started:.1f}s")
    _print_env(binaries.env())
    return 0


def _cmd_start(_: argparse.Namespace) -> int:
    plane = ControlPlane(require_binaries(), detached=True).start()
    _say(f"ready in {plane.startup_seconds:.1f}s at {plane.server}")
    _say(f"stop with: tests/controlplane/controlplane stop --dir {plane.directory}")
    _print_env(plane.env())
    return 0


def _selected(directory: str | None) -> list[RunDir]:
    """``--dir``, else ``$CONTROLPLANE_DIR``, else every detached control plane on this machine."""
    chosen = directory or os.environ.get("CONTROLPLANE_DIR")
    if chosen:
        return [RunDir(Path(chosen))]
    return [rundir for rundir in all_rundirs() if rundir.detached]


def _cmd_stop(args: argparse.Namespace) -> int:
    for rundir in _selected(args.dir):
        if not rundir.path.is_dir():
            raise ControlPlaneError(f"{rundir.path} is not a control plane directory")
        rundir.reap(STOP_TIMEOUT)
        _say(f"stopped {rundir.path}")
    for path in reap_orphans(STOP_TIMEOUT):
        _say(f"reaped orphan {path}")
    return 0


def _cmd_env(args: argparse.Namespace) -> int:
    binaries = require_binaries()
    running = [rundir for rundir in _selected(args.dir) if rundir.kubeconfig.is_file()]
    if len(running) == 1:
        _print_env(describe(running[0], binaries))
    else:
        if len(running) > 1:
            _say(f"{len(running)} control planes are running; pass --dir to pick one")
        _print_env(binaries.env())
    return 0


def _raise_interrupted(signum: int, _: FrameType | None) -> None:
    raise _Interrupted(signum)


def _cmd_run(args: argparse.Namespace) -> int:
    command: list[str] = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise ControlPlaneError("usage: controlplane run -- COMMAND [ARGS...]")
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_interrupted)
    plane = ControlPlane(require_binaries())
    try:
        plane.start()
        _say(f"ready in {plane.startup_seconds:.1f}s at {plane.server}")
        env = {
            **os.environ,
            **plane.env(),
            "PATH": f"{plane.directory / 'bin'}{os.pathsep}{os.environ['PATH']}",
        }
        return _run_child(command, env)
    except _Interrupted as interrupted:
        return 128 + interrupted.signum
    finally:
        plane.stop()


def _run_child(command: Sequence[str], env: Mapping[str, str]) -> int:
    child = subprocess.Popen(command, env=env)
    try:
        return child.wait()
    except KeyboardInterrupt:  # the terminal sent SIGINT to the child too; let it finish
        return child.wait()
    except _Interrupted as interrupted:
        child.send_signal(interrupted.signum)
        try:
            child.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        return 128 + interrupted.signum


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="controlplane", description=__doc__.split("\n")[0])
    versioned = argparse.ArgumentParser(add_help=False)
    versioned.add_argument(
        "--kubernetes",
        metavar="VERSION",
        help=f"Kubernetes release, e.g. 1.34.4 (default: $K8S_VERSION, else {DEFAULT_K8S_VERSION}); "
        "etcd follows it unless $ETCD_VERSION is set; each pair is cached in its own directory",
    )
    commands = parser.add_subparsers(dest="name", required=True)
    commands.add_parser(
        "build",
        parents=[versioned],
        help="build what the cache lacks of kube-apiserver, kubectl, kube-controller-manager and etcd",
    )
    commands.add_parser(
        "start", parents=[versioned], help="start a detached control plane and print its environment"
    )
    stop = commands.add_parser("stop", help="stop detached control planes and reap orphans")
    env = commands.add_parser("env", parents=[versioned], help="print the environment")
    for command in (stop, env):
        command.add_argument(
            "--dir", help="control plane directory (default: $CONTROLPLANE_DIR, else all detached)"
        )
    run = commands.add_parser(
        "run",
        parents=[versioned],
        help="start, run COMMAND with KUBECONFIG set, tear down; exit with its code",
    )
    run.add_argument("command", nargs=argparse.REMAINDER)
    return parser


HANDLERS = {"build": _cmd_build, "start": _cmd_start, "stop": _cmd_stop, "env": _cmd_env, "run": _cmd_run}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "kubernetes", None):
        # Through the environment, so the version reaches every reader, including ``run``'s child.
        os.environ["K8S_VERSION"] = release(args.kubernetes)
    try:
        return HANDLERS[args.name](args)
    except FAILURES as error:
        _say(f"{args.name} FAILED: {error}")
        return 1
    except KeyboardInterrupt:
        return 130
