"""Endpoint names are looked up as absolute DNS names, never through the pod's search path.

A pod's resolv.conf lists search domains (`<ns>.svc.cluster.local`, `svc.cluster.local`, ...) with
`ndots:5`, so a short name such as `zstack.corp` is first tried as `zstack.corp.<ns>.svc.cluster.local`:
whoever can create a Service called `zstack` in a namespace the search list names would receive the
credentials meant for the real `zstack.corp`. The name the endpoint rules checked is the name that must be
looked up, so it is made absolute (a trailing dot). Only the lookup changes: the Host header and TLS
verification (aiohttp's `server_hostname`) still use the name as written. Names only in /etc/hosts
(hostAliases) are not found this way, by the same rule.
"""

from __future__ import annotations

import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver


class AbsoluteResolver(AbstractResolver):
    """Resolves `name` as `name.` with the resolver it wraps (aiohttp's default: the system's)."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        absolute = host if host.endswith(".") else f"{host}."
        return await self._inner.resolve(absolute, port, family)

    async def close(self) -> None:
        await self._inner.close()
