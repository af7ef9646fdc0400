"""`vmclock run`: start the operator with production defaults, through kopf's embeddable API.

Flags mirror `kopf run` where they overlap (`-n/--namespace`, `-A/--all-namespaces`, `--standalone`,
`--peering`, `--priority`, `--liveness`, `--verbose`, `--debug`). Defaults differ on purpose:
- all namespaces unless `-n` is given;
- standalone (no peering) unless `--peering NAME` is given. For a standby replica, run two pods with
  `--peering vmclock` (and create kopf's KopfPeering CRD); replicas of one Deployment share their arguments,
  and kopf freezes every replica when priorities are equal, so without `--priority` each process draws a
  random one. The paused replica stops its resync loops, because those are kopf daemons. The shipped
  Deployment runs one replica with `strategy: Recreate` instead;
- a liveness endpoint on :8080/healthz and Prometheus metrics on :9090;
- memory for ZStack replies in flight, all connections together, is bounded by `--reply-memory-budget`
  (default sized for the shipped Deployment's 384Mi limit); replies wait for room instead of exceeding it;
- credentials go only to https endpoints that their Secret's `vmclock.zstack.io/allowed-endpoints` annotation
  lists; `--allowed-endpoint` (host globs or CIDRs) narrows that further for every tenant, and plain
  http:// or `spec.tls.insecureSkipVerify` need `--allow-insecure-endpoints`.
Environment: POD_NAME names the Event reporting instance (default: the host name); POD_NAMESPACE and
POD_SERVICE_ACCOUNT name the operator's ServiceAccount in the RoleBinding a NamespaceNotEnabled connection
asks for; KUBECONFIG or the in-cluster service account select the cluster.
"""

from __future__ import annotations

import argparse
import re
import secrets
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from vmclock.preview.command import add_plan_parser, run_plan

if TYPE_CHECKING:
    from vmclock.connections.trust import EndpointPolicy, HostPattern

DEFAULT_LIVENESS = "http://0.0.0.0:8080/healthz"
DEFAULT_METRICS_PORT = 9090
DEFAULT_REPLY_MEMORY = "160Mi"  # zstack.budget.DEFAULT_LIMIT, which follows deploy/base's memory limit
_SIZE = re.compile(r"^([0-9]{1,13})(Ki|Mi|Gi)?$")
_UNITS = {None: 1, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vmclock", description="ZStack VM clock-track operator")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="run the operator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        dest="namespaces",
        action="append",
        default=[],
        metavar="NS",
        help="serve only this namespace (repeatable; kopf glob patterns allowed)",
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="serve all namespaces (default)")
    peering = run.add_mutually_exclusive_group()
    peering.add_argument(
        "--standalone",
        action="store_true",
        default=True,
        help="no peering; already the default, accepted for `kopf run` compatibility",
    )
    peering.add_argument("--peering", metavar="NAME", help="join kopf peering NAME (active/standby replicas)")
    run.add_argument(
        "--priority",
        type=int,
        default=None,
        help="peering priority (higher wins; default: random when peering)",
    )
    run.add_argument(
        "--liveness",
        default=DEFAULT_LIVENESS,
        metavar="URL",
        help=f"liveness endpoint (default {DEFAULT_LIVENESS}; empty to disable)",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        default=DEFAULT_METRICS_PORT,
        metavar="PORT",
        help=f"Prometheus metrics port (default {DEFAULT_METRICS_PORT}; 0 disables)",
    )
    run.add_argument(
        "--allowed-endpoint",
        dest="allowed_endpoints",
        action="append",
        default=[],
        type=_host_pattern,
        metavar="GLOB|CIDR",
        help="only endpoints whose host matches (repeatable): a host glob like '*.zstack.example' "
        "(* stays within one DNS label) or a CIDR like 10.0.0.0/8 (matches IP-literal hosts only)",
    )
    run.add_argument(
        "--allow-insecure-endpoints",
        action="store_true",
        help="allow http:// endpoints and spec.tls.insecureSkipVerify (credentials could be intercepted)",
    )
    run.add_argument(
        "--reply-memory-budget",
        type=_reply_memory,
        default=DEFAULT_REPLY_MEMORY,
        metavar="SIZE",
        help=f"memory for ZStack replies in flight, all connections together: bytes, or with Ki, Mi or Gi "
        f"(default {DEFAULT_REPLY_MEMORY}, for a 384Mi memory limit; raise both together)",
    )
    run.add_argument("--log-format", choices=("plain", "json"), default="plain")
    run.add_argument("-v", "--verbose", action="store_true", help="debug logs of the operator and kopf")
    run.add_argument("--debug", action="store_true", help="also asyncio and Kubernetes API traffic")
    add_plan_parser(commands, _host_pattern)
    return parser


def _host_pattern(value: str) -> HostPattern:
    # Imported here, like kopf in run(): vmclock.connections pulls in the whole operator, `--help` needs none.
    from vmclock.connections.trust import HostPattern  # noqa: PLC0415

    try:
        return HostPattern.parse(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _reply_memory(value: str) -> int:
    from vmclock.zstack import replycost  # noqa: PLC0415 - like _host_pattern
    from vmclock.zstack.budget import ReplyBudget  # noqa: PLC0415
    from vmclock.zstack.options import ClientOptions  # noqa: PLC0415

    match = _SIZE.match(value)
    if not match:
        raise argparse.ArgumentTypeError(f"{value!r} is not a size: bytes, or a number with Ki, Mi or Gi")
    limit = int(match.group(1)) * _UNITS[match.group(2)]
    cap = ClientOptions().max_reply_bytes
    smallest = ReplyBudget.smallest_holding(replycost.most(cap))
    if limit < smallest:
        raise argparse.ArgumentTypeError(
            f"{value} cannot hold one reply at the {cap}-byte cap while it is decoded: "
            f"use at least {-(-smallest // 1024**2)}Mi"
        )
    return limit


def endpoint_policy(args: argparse.Namespace) -> EndpointPolicy:
    """The operator-wide endpoint rules from `--allowed-endpoint` and `--allow-insecure-endpoints`."""
    from vmclock.connections.trust import EndpointPolicy  # noqa: PLC0415

    return EndpointPolicy(
        allowed_hosts=tuple(args.allowed_endpoints), allow_insecure=args.allow_insecure_endpoints
    )


def peering_priority(args: argparse.Namespace) -> int | None:
    """Distinct priorities per replica: equal ones make kopf pause every replica of the peering."""
    if args.priority is not None or args.peering is None:
        return args.priority  # type: ignore[no-any-return]
    return 1 + secrets.randbelow(1_000_000)


def run(args: argparse.Namespace) -> None:
    import kopf  # noqa: PLC0415 - keep `vmclock --help` light

    from vmclock.kopfapp import Runtime, build_registry, build_settings  # noqa: PLC0415

    kopf.configure(
        verbose=args.verbose,
        debug=args.debug,
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL,
        log_prefix=args.log_format != "json",
    )
    from vmclock.zstack import budget  # noqa: PLC0415

    budget.configure(args.reply_memory_budget)
    runtime = Runtime.build(metrics_port=args.metrics_port, endpoints=endpoint_policy(args))
    kopf.run(
        registry=build_registry(runtime),
        settings=build_settings(),
        clusterwide=not args.namespaces,
        namespaces=args.namespaces,
        standalone=args.peering is None,
        peering_name=args.peering,
        priority=peering_priority(args),
        liveness_endpoint=args.liveness or None,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "plan":
        return run_plan(args, sys.stdin, sys.stdout, sys.stderr)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
