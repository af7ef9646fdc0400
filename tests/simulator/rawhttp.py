"""A thin raw-HTTP helper for simulator tests: status, headers and body of each call, nothing parsed away.

Deliberately not our ZStack client: the simulator is the reference that client is tested against.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy

from vmclock.simulator import Simulator

POLL_DEADLINE = 5.0
SHA512_PASSWORD = hashlib.sha512(b"password").hexdigest()


@dataclass
class Resp:
    status: int
    headers: CIMultiDictProxy[str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)

    @property
    def error_code(self) -> str:
        assert self.status == 503, (self.status, self.text)
        return str(self.json()["error"]["code"])


class ZS:
    """Raw calls to one simulator; paths are relative to `/zstack`, e.g. `/v1/vm-instances`."""

    def __init__(self, http: aiohttp.ClientSession, sim: Simulator) -> None:
        self.http = http
        self.sim = sim
        self.base = sim.endpoint + sim.config.context_path
        self.session_uuid = ""

    async def call(self, method: str, path: str, **kwargs: Any) -> Resp:
        url = path if path.startswith("http") else self.base + path
        async with self.http.request(method, url, **kwargs) as resp:
            return Resp(resp.status, resp.headers, await resp.text())

    def auth(self, session_uuid: str | None = None) -> dict[str, str]:
        return {"Authorization": f"OAuth {session_uuid or self.session_uuid}"}

    async def login(self, account: str = "admin", password_sha512: str = SHA512_PASSWORD) -> Resp:
        resp = await self.call(
            "PUT",
            "/v1/accounts/login",
            json={"logInByAccount": {"accountName": account, "password": password_sha512}},
        )
        if resp.status == 200:
            self.session_uuid = resp.json()["inventory"]["uuid"]
        return resp

    async def get(self, path: str, **kwargs: Any) -> Resp:
        """An authorized GET with the current session."""
        return await self.call("GET", path, headers={**self.auth(), **kwargs.pop("headers", {})}, **kwargs)

    async def set_track(
        self, uuid: str, track: Any, headers: dict[str, str] | None = None, **extra: Any
    ) -> Resp:
        body = {"setVmClockTrack": {"track": track, **extra}, "systemTags": [], "userTags": []}
        return await self.call(
            "PUT", f"/v1/vm-instances/{uuid}/actions", json=body, headers={**self.auth(), **(headers or {})}
        )

    async def reboot(self, uuid: str) -> Resp:
        body = {"rebootVmInstance": {}, "systemTags": [], "userTags": []}
        return await self.call("PUT", f"/v1/vm-instances/{uuid}/actions", json=body, headers=self.auth())

    def job_url(self, accepted: Resp) -> str:
        """The 202's location with the advertised host rewritten to ours, as the SDKs do."""
        location = accepted.json()["location"]
        return self.base + "/v1/api-jobs/" + location.split("/v1/api-jobs/", 1)[1]

    async def wait_job(self, accepted: Resp, headers: dict[str, str] | None = None) -> Resp:
        """Poll the job a 202 announced until it is no longer running."""
        assert accepted.status == 202, (accepted.status, accepted.text)
        return await self.poll(self.job_url(accepted), headers)

    async def poll(self, url: str, headers: dict[str, str] | None = None) -> Resp:
        """GET a job URL until it answers something other than 202; at most POLL_DEADLINE seconds."""
        async with asyncio.timeout(POLL_DEADLINE):
            while True:
                resp = await self.call("GET", url, headers=headers or {})
                if resp.status != 202:
                    return resp


async def raw_exchange(sim: Simulator, request: bytes) -> bytes:
    """Send one hand-written HTTP/1.1 request on a fresh socket and read until the server closes it.

    aiohttp's client silently retries idempotent methods (PUT included) once after a disconnect, which
    would hide a dropped connection; a bare socket shows exactly what the server did.
    """
    reader, writer = await asyncio.open_connection(sim.config.host, sim.port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(POLL_DEADLINE):
            return await reader.read()
    finally:
        writer.close()


def http_request(
    method: str, target: str, headers: dict[str, str], body: dict[str, Any] | None = None
) -> bytes:
    payload = b"" if body is None else json.dumps(body).encode()
    lines = [
        f"{method} {target} HTTP/1.1",
        "Host: 127.0.0.1",
        "Connection: close",
        f"Content-Length: {len(payload)}",
    ]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
