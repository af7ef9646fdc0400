"""`python -m vmclock.simulator`: run a simulator until SIGTERM/SIGINT.

Prints exactly one line, `vmclock-simulator listening on http://HOST:PORT`, once it is serving, so a parent
process that asked for `--port 0` can read the port from stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
import sys

from vmclock.simulator.config import DEFAULT_ADVERTISED_URL, SimulatorConfig
from vmclock.simulator.server import Simulator


def _pairs(values: list[str] | None, what: str) -> dict[str, str] | None:
    """NAME:SECRET options; the first ':' separates, so secrets may contain ':'."""
    if values is None:
        return None
    out = {}
    for value in values:
        name, sep, secret = value.partition(":")
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"{what} must look like NAME:SECRET")
        out[name] = secret
    return out


def parse_args(argv: list[str] | None = None) -> SimulatorConfig:
    parser = argparse.ArgumentParser(prog="python -m vmclock.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--vms", type=int, default=50)
    parser.add_argument("--zstack-version", default="5.3.0")
    parser.add_argument("--job-latency", type=float, default=0.05, help="seconds each async job takes")
    parser.add_argument(
        "--reboot-seconds", type=float, default=0.5, help="seconds a RebootVmInstance keeps a VM Rebooting"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--session-timeout", type=float, default=7200.0, help="sliding session lifetime, seconds"
    )
    parser.add_argument(
        "--job-retention", type=float, default=10800.0, help="seconds completed jobs stay pollable"
    )
    parser.add_argument("--account", action="append", metavar="NAME:PASSWORD", help="replaces admin:password")
    parser.add_argument("--access-key", action="append", metavar="ID:SECRET")
    parser.add_argument(
        "--advertised-url",
        default=DEFAULT_ADVERTISED_URL,
        help="base URL of job locations in 202 replies; empty: the URL the request came in on",
    )
    args = parser.parse_args(argv)
    try:
        accounts = _pairs(args.account, "--account")
        access_keys = _pairs(args.access_key, "--access-key") or {}
        config = SimulatorConfig(
            vms=args.vms,
            zstack_version=args.zstack_version,
            job_latency=args.job_latency,
            reboot_seconds=args.reboot_seconds,
            seed=args.seed,
            session_timeout=args.session_timeout,
            job_retention=args.job_retention,
            host=args.host,
            port=args.port,
            access_keys=access_keys,
            advertised_url=args.advertised_url or None,
        )
        return config if accounts is None else dataclasses.replace(config, accounts=accounts)
    except (ValueError, argparse.ArgumentTypeError) as error:
        parser.error(str(error))


async def serve(config: SimulatorConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with Simulator(config) as sim:
        print(f"vmclock-simulator listening on {sim.endpoint}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    asyncio.run(serve(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
