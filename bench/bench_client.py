"""Benchmark: SetVmClockTrack on many VMs, vmclock's async client against SDK-style sequential polling.

Numbers, not pass/fail. Starts the simulator as its own process (as a remote management node would be, and
so its CPU is not the client's), then:
1. vmclock's ZStackClient sets the track on every VM, `--concurrency` jobs at a time, polling adaptively;
2. a sequential client polling every 1 s, as ZStack's Java/Python SDKs do, runs the first
   `--baseline-sample` VMs; its time for all VMs is extrapolated from that sample (and says so).
The ideal is ceil(VMs / concurrency) x job latency: every job back to back, with no overhead at all.

    .venv/bin/python bench/bench_client.py [--vms 1000] [--concurrency 32] [--job-latency 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import math
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp

from vmclock.zstack import AccountCredentials, ClientOptions, ZStackClient

ADMIN = AccountCredentials("admin", "password")
READY_LINE = "vmclock-simulator listening on "


class SimulatorProcess:
    """`python -m vmclock.simulator` on a free loopback port; stopped with SIGTERM."""

    def __init__(self, vms: int, job_latency: float) -> None:
        self._args = [
            sys.executable, "-m", "vmclock.simulator", "--port", "0", "--vms", str(vms),
            "--job-latency", str(job_latency), "--seed", "0",
        ]  # fmt: skip
        self._process: subprocess.Popen[str] | None = None
        self.endpoint = ""

    def __enter__(self) -> SimulatorProcess:
        self._process = subprocess.Popen(self._args, stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.startswith(READY_LINE):
            self._process.kill()
            raise RuntimeError(f"simulator did not start: {line!r}")
        self.endpoint = line.removeprefix(READY_LINE).strip()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)


async def admin(session: aiohttp.ClientSession, endpoint: str, method: str, path: str) -> Any:
    async with session.request(method, f"{endpoint}/_sim{path}") as resp:
        resp.raise_for_status()
        return await resp.json()


class SequentialSdkClient:
    """The official SDKs' pattern: one call at a time, a fixed 1 s between job polls (zstack-api.md §2)."""

    POLL_INTERVAL = 1.0

    def __init__(self, session: aiohttp.ClientSession, endpoint: str) -> None:
        self._session = session
        self._base = f"{endpoint}/zstack"
        self._auth = ""

    async def login(self) -> None:
        password = hashlib.sha512(ADMIN.password.encode()).hexdigest()
        body = {"logInByAccount": {"accountName": ADMIN.account_name, "password": password}}
        async with self._session.put(f"{self._base}/v1/accounts/login", json=body) as resp:
            self._auth = f"OAuth {(await resp.json(content_type=None))['inventory']['uuid']}"

    async def set_clock_track(self, vm_uuid: str, track: str) -> None:
        headers = {"Authorization": self._auth, "X-Job-UUID": uuid.uuid4().hex}
        body = {"setVmClockTrack": {"track": track}, "systemTags": [], "userTags": []}
        url = f"{self._base}/v1/vm-instances/{vm_uuid}/actions"
        async with self._session.put(url, json=body, headers=headers) as resp:
            location = (await resp.json(content_type=None))["location"]
        poll = f"{self._base}/v1/api-jobs/{location.split('/v1/api-jobs/', 1)[1]}"
        status = 202
        while status == 202:
            await asyncio.sleep(self.POLL_INTERVAL)
            async with self._session.get(poll, headers={"Authorization": self._auth}) as resp:
                status = resp.status
        if status != 200:
            raise RuntimeError(f"job for {vm_uuid} ended with HTTP {status}")


@dataclass(frozen=True)
class Result:
    name: str
    vms: int
    seconds: float
    polls_per_job: float | None = None
    note: str = ""


async def run_adaptive(endpoint: str, uuids: list[str], concurrency: int) -> tuple[float, dict[str, Any]]:
    """Wall time of vmclock's client setting every VM's track, `concurrency` jobs at a time."""
    options = ClientOptions(max_concurrent_requests=concurrency)
    async with ZStackClient(endpoint, ADMIN, options) as client:
        await client.login()
        gate = asyncio.Semaphore(concurrency)

        async def one(vm_uuid: str) -> None:
            async with gate:
                await client.set_clock_track(vm_uuid, "guest")

        async with aiohttp.ClientSession() as session:
            await admin(session, endpoint, "POST", "/stats/reset")
            started = time.perf_counter()
            await asyncio.gather(*(one(u) for u in uuids))
            elapsed = time.perf_counter() - started
            stats = await admin(session, endpoint, "GET", "/stats")
    return elapsed, stats


async def run_sequential(endpoint: str, uuids: list[str]) -> float:
    async with aiohttp.ClientSession() as session:
        client = SequentialSdkClient(session, endpoint)
        await client.login()
        started = time.perf_counter()
        for vm_uuid in uuids:
            await client.set_clock_track(vm_uuid, "host")
        return time.perf_counter() - started


async def bench(vms: int, concurrency: int, job_latency: float, sample: int) -> list[Result]:
    with SimulatorProcess(vms, job_latency) as sim:
        async with aiohttp.ClientSession() as session:
            uuids = [vm["uuid"] for vm in await admin(session, sim.endpoint, "GET", "/vms")]
        ideal = math.ceil(vms / concurrency) * job_latency
        adaptive, stats = await run_adaptive(sim.endpoint, uuids, concurrency)
        if len(stats["writes"]) != vms:
            raise RuntimeError(f"expected {vms} writes, the simulator saw {len(stats['writes'])}")
        sampled = await run_sequential(sim.endpoint, uuids[:sample])
    polls = stats["calls"].get("PollJob", 0) / vms
    return [
        Result(f"ideal: ceil({vms}/{concurrency}) x {job_latency:g} s", vms, ideal),
        Result(f"vmclock ZStackClient, {concurrency} concurrent", vms, adaptive, polls),
        Result(
            "sequential, 1 s polls (SDK-style)",
            vms,
            sampled * vms / sample,
            note=f"extrapolated from {sample} VMs in {sampled:.2f} s",
        ),
    ]


def print_table(results: list[Result]) -> None:
    ideal = results[0].seconds
    print(f"{'client':<40} {'VMs':>5} {'wall s':>9} {'x ideal':>8} {'polls/job':>9}  note")
    for r in results:
        polls = f"{r.polls_per_job:.2f}" if r.polls_per_job is not None else "-"
        print(f"{r.name:<40} {r.vms:>5} {r.seconds:>9.2f} {r.seconds / ideal:>8.2f} {polls:>9}  {r.note}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vms", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--job-latency", type=float, default=0.2)
    parser.add_argument("--baseline-sample", type=int, default=20)
    args = parser.parse_args()
    print_table(asyncio.run(bench(args.vms, args.concurrency, args.job_latency, args.baseline_sample)))


if __name__ == "__main__":
    main()
