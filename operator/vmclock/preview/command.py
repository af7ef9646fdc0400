"""`vmclock plan`: preview VmClockPolicy manifests against the live ZStack fleet, read-only.

    vmclock plan -f policy.yaml                       # connection from the cluster (your kubeconfig)
    kustomize build overlays/prod | vmclock plan -f - --against-cluster -o json
    ZSTACK_ACCOUNT_NAME=... ZSTACK_PASSWORD=... vmclock plan -f dir/ --endpoint https://zstack.example:8080

Exit codes, like `terraform plan -detailed-exitcode`: 0 nothing would change, 2 something would be written,
1 error (including VMs whose track ZStack could not tell: the plan would be incomplete).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

EXIT_NO_CHANGES = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
DEFAULT_NAMESPACE = "default"


def add_plan_parser(commands: Any, host_pattern: Callable[[str], Any]) -> None:
    """`commands`: the subparsers of `vmclock`; `host_pattern`: the `--allowed-endpoint` type of `run`."""
    plan = commands.add_parser(
        "plan",
        help="preview VmClockPolicy manifests against ZStack (read-only)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    plan.add_argument(
        "-f",
        "--filename",
        dest="filenames",
        action="append",
        required=True,
        metavar="FILE|DIR|-",
        help="manifests: a file, a directory (not recursive) or - for stdin (repeatable)",
    )
    plan.add_argument(
        "-n", "--namespace", help="namespace of manifests without one (default: the kubeconfig context's)"
    )
    plan.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
    plan.add_argument(
        "--against-cluster",
        action="store_true",
        help="also show how each policy differs from its version in the cluster (VMs added, released)",
    )
    plan.add_argument(
        "--endpoint",
        metavar="URL",
        help="reach ZStack here instead of through the cluster's ZStackConnection; credentials from "
        "--credentials-file or ZSTACK_ACCOUNT_NAME/ZSTACK_PASSWORD or "
        "ZSTACK_ACCESS_KEY_ID/ZSTACK_ACCESS_KEY_SECRET",
    )
    plan.add_argument(
        "--credentials-file",
        type=Path,
        metavar="FILE",
        help="with --endpoint: YAML/JSON with the Secret's keys, or the Secret manifest itself",
    )
    plan.add_argument("--context-path", default="/zstack", help="with --endpoint: ZStack's context path")
    plan.add_argument("--ca-file", type=Path, metavar="PEM", help="with --endpoint: CA bundle to verify it")
    plan.add_argument(
        "--allowed-endpoint",
        dest="allowed_endpoints",
        action="append",
        default=[],
        type=host_pattern,
        metavar="GLOB|CIDR",
        help="as for `vmclock run`: only endpoints whose host matches (repeatable)",
    )
    plan.add_argument(
        "--allow-insecure-endpoints",
        action="store_true",
        help="as for `vmclock run`: allow http:// endpoints and spec.tls.insecureSkipVerify",
    )


def _context_namespace() -> str:
    """The current kubeconfig context's namespace, as kubectl would use it."""
    import kubernetes.config  # noqa: PLC0415

    try:
        _, active = kubernetes.config.list_kube_config_contexts()  # type: ignore[no-untyped-call]
    except (kubernetes.config.ConfigException, OSError):
        return DEFAULT_NAMESPACE
    return str((active or {}).get("context", {}).get("namespace") or DEFAULT_NAMESPACE)


def run_plan(args: argparse.Namespace, stdin: IO[str], stdout: IO[str], stderr: IO[str]) -> int:
    from vmclock.preview.access import AccessError  # noqa: PLC0415
    from vmclock.preview.manifests import ManifestError  # noqa: PLC0415
    from vmclock.preview.session import PlanError, plan  # noqa: PLC0415

    try:
        previews, notes = asyncio.run(plan(args, stdin, os.environ, _context_namespace))
    except (AccessError, ManifestError, PlanError) as error:
        stderr.write(f"vmclock plan: error: {error}\n")
        return EXIT_ERROR
    from vmclock.preview.outcome import Action  # noqa: PLC0415
    from vmclock.preview.render import render, total_writes  # noqa: PLC0415

    render(previews, notes, args.output, stdout)
    unreadable = [vm for p in previews for vm in p.vms if vm.action is Action.UNREADABLE]
    if unreadable:
        stderr.write(
            f"vmclock plan: error: ZStack could not tell the track of {len(unreadable)} VMs (first: "
            f"{unreadable[0].error}); the plan is incomplete\n"
        )
        return EXIT_ERROR
    return EXIT_CHANGES if total_writes(previews) else EXIT_NO_CHANGES
