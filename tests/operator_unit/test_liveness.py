"""Liveness through kopf's real health endpoint: 200 while resync loops tick, 500 once one stalls."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import kopf
from kopf._core.engines import probing

from vmclock.kopfapp import Runtime, build_registry, build_settings
from vmclock.kopfapp.liveness import STALL_SECONDS, Heartbeats


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def probe_once(runtime: Runtime) -> tuple[int, str]:
    """One GET against a fresh kopf health reporter (kopf caches probe results for 10 s per reporter)."""
    url = f"http://127.0.0.1:{free_port()}/healthz"
    ready = asyncio.Event()
    reporter = asyncio.create_task(
        probing.health_reporter(
            url,
            memo=kopf.Memo(),
            indices={},
            registry=build_registry(runtime),
            settings=build_settings(),
            ready_flag=ready,
        )
    )
    try:
        await asyncio.wait_for(ready.wait(), 10)
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return response.status, await response.text()
    finally:
        reporter.cancel()
        await asyncio.gather(reporter, return_exceptions=True)


async def test_the_endpoint_fails_when_a_resync_loop_stalls() -> None:
    clock = FakeClock()
    runtime = Runtime.build()
    runtime.heartbeats = Heartbeats(clock)
    assert await probe_once(runtime) == (200, '{"resync": {"resyncLoops": 0}}')

    runtime.heartbeats.beat(("ns", "zs"))
    clock.now += STALL_SECONDS - 1
    assert (await probe_once(runtime))[0] == 200

    clock.now += 2
    status, _ = await probe_once(runtime)
    assert status == 500

    runtime.heartbeats.forget(("ns", "zs"))  # a deleted connection's loop is no longer expected to tick
    assert (await probe_once(runtime))[0] == 200
