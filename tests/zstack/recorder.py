"""A loopback HTTP proxy that records requests exactly as the client put them on the wire.

It sits between the client and the simulator when a test must see what was sent (request lines, bodies,
X-Job-UUID headers, session ids) or must see the client survive an answer the simulator cannot produce
(a garbage 200 from a misbehaving proxy).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

_HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


@dataclass(frozen=True)
class Seen:
    method: str
    target: str  # path and query, as sent
    headers: dict[str, str]
    body: bytes

    @property
    def request_line(self) -> str:
        return f"{self.method} {self.target} HTTP/1.1"

    def json(self) -> Any:
        return json.loads(self.body)


Tamper = Callable[[Seen, int, bytes], tuple[int, bytes] | None]


class RecordingProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.seen: list[Seen] = []
        self.tamper: Tamper | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.endpoint = ""

    def matching(self, method: str, path_part: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method and path_part in s.target]

    async def __aenter__(self) -> RecordingProxy:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.endpoint = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        seen = Seen(request.method, request.raw_path, dict(request.headers), body)
        self.seen.append(seen)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        url = URL(self.upstream + request.raw_path, encoded=True)
        try:
            async with self._session.request(
                request.method, url, data=body or None, headers=headers, allow_redirects=False
            ) as upstream:
                status, payload = upstream.status, await upstream.read()
        except aiohttp.ClientError:
            if request.transport is not None:  # mirror a dropped connection
                request.transport.abort()
            return web.Response()
        if self.tamper is not None:
            status, payload = self.tamper(seen, status, payload) or (status, payload)
        return web.Response(status=status, body=payload)
