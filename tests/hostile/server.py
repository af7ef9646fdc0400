"""A hostile "management node": one aiohttp server on loopback serving every attack of issue 9, plus a
bystander server that must never receive a request. Run as its own process, so that the memory the tests
measure is the client's alone:

    python tests/hostile/server.py   ->   prints "hostile <port> bystander <port>"

Each attack is a context path (`http://127.0.0.1:<port>/<attack>` is the client's endpoint). What an attack
does not replace answers like a small, well-behaved ZStack 5.3.0, so every call reaches the part under
attack. `GET /_stats` returns the requests each attack and the bystander received. Large bodies are written
from one preallocated chunk, never built whole.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

SESSION = "0123456789abcdef0123456789abcdef"
HUGE = 600 * 1024 * 1024
CHUNK = 64 * 1024
BOMB = 128 * 1024 * 1024  # what the gzip bomb expands to: twice the growth the tests allow
_UUID_LIST = re.compile(r"uuid\?=([0-9a-f,]+)")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse | None]]


def reply(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode())  # no Content-Type, like ZStack


async def stream(
    request: web.Request, status: int, head: bytes, unit: bytes, length: int | None
) -> web.StreamResponse:
    """Write `head`, then `unit` over and over: `length` bytes in all (declared), or forever (chunked)."""
    resp = web.StreamResponse(status=status)
    if length is None:
        resp.enable_chunked_encoding()
    else:
        resp.content_length = length
    await resp.prepare(request)
    chunk = unit * (CHUNK // len(unit))
    sent = len(head)
    try:
        await resp.write(head)
        while length is None or sent < length:
            part = chunk if length is None else chunk[: length - sent]
            await resp.write(part)
            sent += len(part)
    except (ConnectionError, RuntimeError):
        pass  # the client hung up: what it should do
    return resp


def asked_uuids(request: web.Request) -> list[str]:
    found = _UUID_LIST.search(request.query_string.replace("%3F%3D", "?=").replace("%3D", "="))
    return found.group(1).split(",") if found else []


async def huge(request: web.Request) -> web.StreamResponse:
    return await stream(request, 200, b"", b"0", HUGE)


async def endless(request: web.Request) -> web.StreamResponse:
    return await stream(request, 200, b'{"inventories":[', b'{"uuid":"%s"},' % SESSION.encode(), None)


async def endless_text(request: web.Request) -> web.StreamResponse:
    return await stream(request, 400, b"Bad request: ", b"blah ", None)


def gzip_bomb_body() -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    block = b" " * (1024 * 1024)
    return b"".join(packer.compress(block) for _ in range(BOMB // len(block))) + packer.flush()


GZIP_BOMB = gzip_bomb_body()  # made once, before the server says it is listening


async def gzip_bomb(request: web.Request) -> web.Response:
    """~120 KB on the wire, 128 MiB of JSON whitespace once decompressed (which the client must not do)."""
    return web.Response(body=GZIP_BOMB, headers={"Content-Encoding": "gzip"})


async def digits(request: web.Request) -> web.Response | None:
    if request.path.endswith("/management-nodes/actions"):
        return reply({"version": "1" * 1_000_000})
    return None


async def pages(request: web.Request) -> web.Response | None:
    """Every page as full as asked, never a total: the listing only ends if the client ends it."""
    if request.path.endswith("/global-configurations"):
        row = {"name": "vm.clock.track", "category": "vm", "value": "guest"}
        return reply({"inventories": [row] * int(request.query.get("limit", "1000"))})
    return None


async def overfull(request: web.Request) -> web.Response | None:
    """More rows than asked for, whatever the limit."""
    if request.path.endswith("/vm-instances"):
        return reply({"inventories": [{"uuid": f"{n:032x}", "name": "x"} for n in range(1000)]})
    return None


async def nested(request: web.Request) -> web.Response:
    return web.Response(body=b'{"inventories":' + b"[" * 100_000 + b"]" * 100_000 + b"}")


async def error_text(request: web.Request) -> web.Response | None:
    if request.path.endswith("/vm-instances"):
        error = {"code": "SYS.1006", "description": "d" * 3_000_000, "details": "x" * 3_000_000}
        return reply({"error": error}, status=503)
    return None


async def inventory(request: web.Request) -> web.Response | None:
    if request.path.endswith("/vm-instances"):
        giant = "g" * 400_000
        rows = [
            {"uuid": uuid, "name": giant, "state": giant, "platform": giant, "zoneUuid": giant,
             "lastOpDate": giant, "cpuNum": 1e30, "memorySize": -5}
            for uuid in asked_uuids(request)
        ]  # fmt: skip
        return reply({"inventories": rows, "total": len(rows)})
    return None


async def timeout(request: web.Request) -> web.Response | None:
    if request.method == "PUT" and request.path.endswith("/actions") and "/vm-instances/" in request.path:
        job = request.headers.get("X-Job-UUID", "0" * 32)
        location = f"http://10.0.0.1:8080/zstack/v1/api-jobs/{job}"
        return reply({"location": location, "apiTimeout": 1e15}, status=202)
    if "/api-jobs/" in request.path:
        return reply({}, status=202)  # running, forever
    return None


async def echo(request: web.Request) -> web.Response | None:
    """Hand the request's Authorization header back in an error, as a careless (or nosy) server might."""
    if request.path.endswith("/vm-instances"):
        header = request.headers.get("Authorization", "")
        error = {"code": "ID.1002", "description": f"denied: {header}", "details": f"Authorization: {header}"}
        return reply({"error": error}, status=503)
    return None


NEAR_CAP = 8 * 1024 * 1024 - 64  # just under the client's default cap on one reply
BIG_WRITE = b'{"inventory":{"uuid":"' + b"0" * 32 + b'","name":"' + b"x" * (NEAR_CAP - 80) + b'"}}'


async def big_writes(request: web.Request) -> web.Response | None:
    """Every SetVmClockTrack answered at once (200) with a near-cap inventory, after a pause that lets all
    the writes a client sends be in flight together."""
    if request.method == "PUT" and "/vm-instances/" in request.path:
        await asyncio.sleep(0.5)
        return web.Response(body=BIG_WRITE)
    return None


async def near_cap_text(request: web.Request) -> web.StreamResponse:
    return await stream(request, 200, b"", b"x", NEAR_CAP)


async def calm(request: web.Request) -> None:
    """No attack: a bystander tenant's endpoint, answering like ZStack."""


def well_behaved(request: web.Request) -> web.Response:
    path = request.path
    if path.endswith("/management-nodes/actions"):
        return reply({"version": "5.3.0"})
    if path.endswith("/accounts/login"):
        return reply({"inventory": {"uuid": SESSION}})
    if request.method == "DELETE" or path.endswith("/management-nodes/ready"):
        return reply({})
    return reply({"inventories": [], "total": 0})


ATTACKS: dict[str, Handler] = {
    "huge": huge,
    "endless": endless,
    "endless-text": endless_text,
    "gzip": gzip_bomb,
    "digits": digits,
    "pages": pages,
    "overfull": overfull,
    "nested": nested,
    "error-text": error_text,
    "inventory": inventory,
    "timeout": timeout,
    "echo": echo,
    "big-writes": big_writes,
    "calm": calm,
    "near-cap-text": near_cap_text,
}


class Hostile:
    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.bystander_port = 0

    async def attack(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["attack"]
        self.requests[name] += 1
        if name == "redirect":
            rest = request.path_qs.split("/", 2)[2]  # below the attack's context path
            raise web.HTTPTemporaryRedirect(location=f"http://127.0.0.1:{self.bystander_port}/zstack/{rest}")
        handler = ATTACKS.get(name)
        if handler is None:
            raise web.HTTPNotFound(text=f"no attack {name}")
        answer = await handler(request)
        return well_behaved(request) if answer is None else answer

    async def bystander(self, request: web.Request) -> web.Response:
        self.requests["bystander"] += 1
        return reply({"version": "5.3.0", "inventory": {"uuid": SESSION}, "inventories": []})

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(dict(self.requests))


async def serve() -> None:
    hostile = Hostile()
    bystander_app = web.Application()
    bystander_app.router.add_route("*", "/{tail:.*}", hostile.bystander)
    app = web.Application()
    app.router.add_get("/_stats", hostile.stats)
    app.router.add_route("*", "/{attack}/{tail:.*}", hostile.attack)
    ports = []
    for application in (app, bystander_app):
        runner = web.AppRunner(application, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        ports.append(runner.addresses[0][1])
    hostile.bystander_port = ports[1]
    print(f"hostile {ports[0]} bystander {ports[1]}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        sys.exit(0)
