"""Run inside a private network and mount namespace (test_absolute_names.py): a pod-like resolv.conf
(`search tenant-b.svc.cluster.local`, `ndots:5`) points the system resolver at a DNS server on 127.0.0.1
that this script runs. `zstack.corp` (the management node) is 127.0.0.3; a Service `zstack` planted in
namespace `corp.tenant-b` would answer `zstack.corp.tenant-b.svc.cluster.local` with 127.0.0.2. Both serve
the same certificate for `zstack.corp`, so only the lookup tells them apart.

Prints one JSON object: which server each kind of lookup reached, and every name the DNS server was asked.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import struct
import sys
from pathlib import Path
from typing import cast

from aiohttp import web
from aiohttp.resolver import DefaultResolver

from vmclock.zstack.options import ClientOptions, Endpoint
from vmclock.zstack.redact import Redactor
from vmclock.zstack.transport import Transport

NAME = "zstack.corp"
RECORDS = {f"{NAME}.": "127.0.0.3", f"{NAME}.tenant-b.svc.cluster.local.": "127.0.0.2"}
PORT = 8443


class Dns(asyncio.DatagramProtocol):
    """Just enough DNS: A records from RECORDS, NODATA for other types of known names, else NXDOMAIN."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        (ident,) = struct.unpack("!H", data[:2])
        labels, at = [], 12
        while data[at]:
            labels.append(data[at + 1 : at + 1 + data[at]].decode("ascii").lower())
            at += 1 + data[at]
        qtype, _ = struct.unpack("!HH", data[at + 1 : at + 5])
        question = data[12 : at + 5]
        name = ".".join(labels) + "."
        self.asked.append(name)
        answers = b""
        if name in RECORDS and qtype == 1:
            address = socket.inet_aton(RECORDS[name])
            answers = struct.pack("!HHHIH", 0xC00C, 1, 1, 30, 4) + address
        rcode = 0 if name in RECORDS else 3
        header = struct.pack("!HHHHHH", ident, 0x8180 | rcode, 1, 1 if answers else 0, 0, 0)
        self.transport.sendto(header + question + answers, addr)


async def serve(address: str, context: ssl.SSLContext) -> web.AppRunner:
    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"server": address, "host": request.host})

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, address, PORT, ssl_context=context).start()
    return runner


async def main(certificate: Path, key: Path) -> None:
    loop = asyncio.get_running_loop()
    _, dns = await loop.create_datagram_endpoint(Dns, local_addr=("127.0.0.1", 53))
    serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    serving.load_cert_chain(certificate, key)
    runners = [await serve(address, serving) for address in sorted(set(RECORDS.values()))]
    trusting = ssl.create_default_context(cafile=certificate)

    bare = await DefaultResolver().resolve(NAME, PORT, socket.AF_INET)
    dns.asked.clear()
    transport = Transport(
        Endpoint.parse(f"https://{NAME}:{PORT}", "/zstack"), ClientOptions(ssl=trusting), Redactor()
    )
    try:
        reply = await transport.send("GET", "/v1/management-nodes/actions", operation="probe")
    finally:
        await transport.close()
    print(
        json.dumps(
            {
                "bare_lookup": bare[0]["host"],
                "client_reached": reply.body,
                "client_asked": dns.asked,
            }
        )
    )
    for runner in runners:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2])))
