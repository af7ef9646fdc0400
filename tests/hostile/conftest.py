"""The hostile server as its own process, and what each attack cost the client (time, peak RSS growth).

Memory is the peak resident set of this (the client's) process: /proc/self/clear_refs resets VmHWM before
each attack, so the peak it shows afterwards belongs to that attack alone. The table of measurements is
printed at the end of the run.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from vmclock.zstack import AccountCredentials, ClientOptions, Credentials, ZStackClient

SERVER = Path(__file__).with_name("server.py")
T = TypeVar("T")

# Production settings but for quick retries: a terminal error must come after one exchange, retryable ones
# after five, and neither should wait for seconds of backoff here.
OPTIONS = ClientOptions(request_timeout=5.0, retry_base_delay=0.001, retry_max_delay=0.01)
ADMIN = AccountCredentials("admin", "password")


@dataclass
class Cost:
    attack: str
    outcome: str
    seconds: float
    rss_growth_mib: float
    requests: int


MEASURED: list[Cost] = []


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise LookupError(key)


def _reset_peak() -> None:
    """Reset VmHWM (peak RSS) to the current RSS."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")


@dataclass
class HostileServer:
    base: str
    bystander: str
    _session: aiohttp.ClientSession
    clients: list[ZStackClient] = field(default_factory=list)

    def client(
        self, attack: str, credentials: Credentials = ADMIN, *, base: str = "", **overrides: Any
    ) -> ZStackClient:
        """A client of `attack` on this server, or on the one at `base`."""
        made = ZStackClient(f"{base or self.base}/{attack}", credentials, replace(OPTIONS, **overrides))
        self.clients.append(made)
        return made

    async def requests(self) -> dict[str, int]:
        async with self._session.get(f"{self.base}/_stats") as resp:
            return await resp.json()  # type: ignore[no-any-return]

    async def measure(
        self, attack: str, call: Awaitable[T], label: str = ""
    ) -> tuple[T | BaseException, Cost]:
        """Run `call`, returning its result or exception and what it cost; records the cost for the table."""
        gc.collect()
        before_requests = (await self.requests()).get(attack, 0)
        rss = _status_kib("VmRSS")
        _reset_peak()
        started = time.perf_counter()
        outcome: T | BaseException
        try:
            outcome = await call
        except Exception as exc:
            outcome = exc
        seconds = time.perf_counter() - started
        growth = (_status_kib("VmHWM") - rss) / 1024
        requests = (await self.requests()).get(attack, 0) - before_requests
        cost = Cost(label or attack, str(getattr(outcome, "code", "ok")), seconds, growth, requests)
        MEASURED.append(cost)
        return outcome, cost


@contextmanager
def _serving() -> Iterator[tuple[str, str]]:
    process = subprocess.Popen([sys.executable, str(SERVER)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline().split()
    try:
        assert line[0] == "hostile", line
        yield f"http://127.0.0.1:{line[1]}", f"http://127.0.0.1:{line[3]}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def server_process() -> Iterator[tuple[str, str]]:
    with _serving() as urls:
        yield urls


@pytest.fixture(scope="module")
def other_server() -> Iterator[str]:
    """A second server process: a bystander tenant's endpoint, not slowed by serving an attack itself."""
    with _serving() as (base, _):
        yield base


@pytest.fixture
async def hostile(server_process: tuple[str, str]) -> AsyncIterator[HostileServer]:
    async with aiohttp.ClientSession() as session:
        server = HostileServer(*server_process, session)
        yield server
        for client in server.clients:
            await client.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not MEASURED:
        return
    terminalreporter.section("hostile endpoint: cost per attack (client process)")
    terminalreporter.write_line(
        f"{'attack':<34} {'outcome':<24} {'time':>8} {'peak RSS growth':>16} {'requests':>9}"
    )
    for cost in MEASURED:
        terminalreporter.write_line(
            f"{cost.attack:<34} {cost.outcome:<24} {cost.seconds * 1000:>6.0f}ms "
            f"{cost.rss_growth_mib:>12.1f} MiB {cost.requests:>9}"
        )
