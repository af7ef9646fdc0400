"""`python -m vmclock.simulator`: one "listening" line, real answers, clean exit on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import hashlib
import re
import signal
import sys

import aiohttp
import pytest

LISTENING = re.compile(r"vmclock-simulator listening on (http://127\.0\.0\.1:(\d+))\n")


async def start(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vmclock.simulator", "--port", "0", *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    async with asyncio.timeout(30):
        line = (await proc.stdout.readline()).decode()
    match = LISTENING.fullmatch(line)
    assert match, line
    return proc, match.group(1)


async def stop(proc: asyncio.subprocess.Process, signum: int) -> tuple[int, bytes]:
    proc.send_signal(signum)
    async with asyncio.timeout(10):
        _, stderr = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_cli_serves_and_stops_cleanly(signum: int) -> None:
    proc, endpoint = await start(
        "--vms", "7", "--zstack-version", "4.2.0", "--job-latency", "0.01", "--seed", "3",
        "--account", "ops:pa:ss", "--access-key", "AK:secret", "--session-timeout", "60",
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as http:
            login = {
                "logInByAccount": {"accountName": "ops", "password": hashlib.sha512(b"pa:ss").hexdigest()}
            }
            async with http.put(endpoint + "/zstack/v1/accounts/login", json=login) as resp:
                assert resp.status == 200
                session = (await resp.json(content_type=None))["inventory"]["uuid"]
            async with http.put(
                endpoint + "/zstack/v1/management-nodes/actions", json={"getVersion": {}}
            ) as resp:
                assert await resp.json(content_type=None) == {"version": "4.2.0"}
            headers = {"Authorization": f"OAuth {session}"}
            async with http.get(endpoint + "/zstack/v1/vm-instances", headers=headers) as resp:
                assert len((await resp.json(content_type=None))["inventories"]) == 7
            async with http.get(endpoint + "/_sim/vms") as resp:
                assert len(await resp.json()) == 7
    finally:
        returncode, stderr = await stop(proc, signum)
    assert returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr


async def test_cli_rejects_bad_arguments() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vmclock.simulator", "--zstack-version", "five", "--account", "nocolon",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(30):
        stdout, stderr = await proc.communicate()
    assert proc.returncode == 2
    assert stdout == b""
    assert b"usage:" in stderr
