"""HTTP to one management node: one reused aiohttp session, a concurrency cap, timeouts, error folding.

Everything above this layer sees either a `Reply` or a `ZStackError` with a client-side code
(CLIENT.TRANSPORT / CLIENT.TIMEOUT / CLIENT.REPLY_TOO_LARGE / CLIENT.BAD_REPLY), never an aiohttp exception.
A body is read in chunks up to `max_reply_bytes` and the connection dropped past that, so an endpoint
cannot make the process hold more than that per request (design §6.2); bodies are never decompressed
(a small gzip bomb could otherwise expand past any cap before a chunk is seen): a compressed reply,
though only `identity` was accepted, is a BAD_REPLY. Across requests, the memory a reply takes from its
first body byte until it is decoded is held on the process's reply budget (design §6.6, budget.py), so
many large replies at once wait for memory instead of exhausting it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from functools import partial
from typing import Any

import aiohttp
from yarl import URL

from vmclock import __version__
from vmclock.zstack import replycost
from vmclock.zstack.budget import process_budget
from vmclock.zstack.dns import AbsoluteResolver
from vmclock.zstack.errors import (
    BAD_REPLY,
    REPLY_TOO_LARGE,
    TIMEOUT,
    TRANSPORT,
    MaySend,
    NotSent,
    ZStackError,
)
from vmclock.zstack.jsonguard import ReplyRejected
from vmclock.zstack.options import ClientOptions, Endpoint
from vmclock.zstack.redact import Redactor
from vmclock.zstack.replies import Reply
from vmclock.zstack.replymemory import ReplyMemory

log = logging.getLogger(__name__)

JSON_CONTENT_TYPE = "application/json; charset=utf-8"  # what ZStack's own SDKs send
_CHUNK = 64 * 1024


class Transport:
    """Sends requests; at most `max_concurrent_requests` on the wire at once (ZStack has 50 API workers)."""

    def __init__(self, endpoint: Endpoint, options: ClientOptions, redact: Redactor) -> None:
        self.endpoint = endpoint
        self.redact = redact
        self.options = options
        self._gate = asyncio.Semaphore(options.max_concurrent_requests)
        self._budget = options.reply_budget or process_budget()
        most = replycost.most(options.max_reply_bytes)
        if most > self._budget.largest_claim:
            raise ValueError(
                f"max_reply_bytes {options.max_reply_bytes} needs up to {most} bytes to decode, more "
                f"than the reply memory budget of {self._budget.limit} bytes lets one reply take"
            )
        self._session: aiohttp.ClientSession | None = None
        self._resolver: AbsoluteResolver | None = None
        self._closed = False

    def _client_session(self) -> aiohttp.ClientSession:
        """Created on first use, inside the running loop, then reused for keep-alive."""
        if self._closed:
            raise RuntimeError("the ZStack client is closed")
        if self._session is None:
            self._resolver = AbsoluteResolver()  # a connector closes only a resolver it made: see close()
            connector = aiohttp.TCPConnector(ssl=self.options.aiohttp_ssl, resolver=self._resolver)
            timeout = aiohttp.ClientTimeout(
                total=self.options.request_timeout, sock_connect=self.options.connect_timeout
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=timeout,
                headers={"User-Agent": f"vmclock/{__version__}", "Accept-Encoding": "identity"},
                auto_decompress=False,
            )
            # aiohttp silently resends a PUT/DELETE/GET once when its connection drops. A ZStack submit is
            # not idempotent: the copy carries the same X-Job-UUID, which >= 4.6 refuses (400 "Duplicate
            # job uuid") and older releases run twice. Lost answers are recovered by jobs.py instead.
            # There is no public switch; aiohttp's own test client clears the same attribute.
            self._session._retry_connection = False
        return self._session

    async def send(
        self,
        method: str,
        api_path: str,
        *,
        operation: str,
        query: str = "",
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        may_send: MaySend | None = None,
    ) -> Reply:
        """One HTTP exchange; `query` comes encoded (the query builder measures its exact length).
        `may_send` is asked once a request slot is held, right before the request leaves (NotSent if not):
        the latest moment a caller can still withdraw a submission."""
        url = URL(self.endpoint.url(api_path, query), encoded=True)
        request_headers = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            request_headers["Content-Type"] = JSON_CONTENT_TYPE
        session = self._client_session()
        with ReplyMemory(self._budget, operation) as memory:
            async with self._gate:
                if may_send is not None and (why := may_send()) is not None:
                    raise NotSent(why)
                deadline = asyncio.get_running_loop().time() + self.options.request_timeout  # as aiohttp's
                try:
                    # Redirects are never followed: ZStack sends none, and following one could carry the
                    # Authorization header somewhere else.
                    async with session.request(
                        method, url, data=data, headers=request_headers, allow_redirects=False
                    ) as resp:
                        raw = await self._read_capped(resp, operation, memory, deadline)
                        status = resp.status
                # `from None`: aiohttp's own messages may quote the URL (the logout path holds the session
                # id), so only the redacted text travels on, never the original exception.
                except TimeoutError as exc:
                    raise self._failure(TIMEOUT, "request timed out", exc, operation) from None
                except aiohttp.ClientError as exc:
                    raise self._failure(TRANSPORT, "connection failed", exc, operation) from None
            try:
                return await Reply.read(status, raw, partial(memory.decoding, raw))
            except ReplyRejected as exc:
                raise ZStackError.client(
                    BAD_REPLY, str(exc), http_status=status, operation=operation
                ) from None

    async def _read_capped(
        self, resp: aiohttp.ClientResponse, operation: str, memory: ReplyMemory, deadline: float
    ) -> bytes:
        """The body, or REPLY_TOO_LARGE (connection dropped) as soon as it is known to pass the cap. Memory
        for the body is held before it is read: all at once when its length is declared, else by chunks."""
        limit = self.options.max_reply_bytes
        if resp.headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity"):
            resp.close()
            what = "compressed reply although only identity encoding was accepted"
            raise ZStackError.client(BAD_REPLY, what, http_status=resp.status, operation=operation)
        declared = resp.content_length
        if declared is None or declared <= limit:
            await memory.start(declared, limit, deadline)
            body = bytearray()
            while len(body) <= limit:
                size = min(_CHUNK, limit + 1 - len(body))  # one byte past the cap tells it was passed
                await memory.reading(len(body) + size)
                chunk = await resp.content.read(size)
                if not chunk:
                    return bytes(body)
                body += chunk
        resp.close()
        description = f"reply body larger than {limit} bytes"
        raise ZStackError.client(REPLY_TOO_LARGE, description, http_status=resp.status, operation=operation)

    def _failure(self, code: str, description: str, exc: BaseException, operation: str) -> ZStackError:
        details = self.redact(f"{type(exc).__name__}: {exc}".rstrip(": "))
        return ZStackError.client(code, description, details, operation=operation)

    async def close(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None
