"""One ready ZStackClient per ZStackConnection, cached and rebuilt only when something it depends on changes.

A client holds an aiohttp session and a ZStack login; building one per reconcile would log in thousands of
times a day. So the manager keys clients by (namespace, name) and fingerprints what they were built from:
the connection spec, the Secret's resourceVersion and the CA object's resourceVersion. A check with the same
fingerprint reuses the client; a different one closes the old client and builds a new one. Every check walks
the same ladder (Secret -> TLS -> ready -> version -> login) and stops at the first rung that fails, which
becomes the connection's `Ready` reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vmclock.connections.problems import (
    AUTH_FAILED,
    CONNECTED,
    NOT_FOUND,
    NOT_READY,
    UNREACHABLE,
    UNSUPPORTED,
    ConnectionProblem,
)
from vmclock.connections.secrets import ObjectReader, load_credentials, load_tls
from vmclock.connections.spec import ConnectionSpec, parse_connection_spec
from vmclock.engine.reconcile import ConnectionUnavailable
from vmclock.zstack import ClientOptions, OnCall, ZStackClient, ZStackError
from vmclock.zstack.errors import HTTP, ID_AUTHENTICATION, ID_PERMISSION_DENIED, SYS_NOT_READY

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
Key = tuple[str, str]


@dataclass(frozen=True)
class ConnectionVerdict:
    """The outcome of one check, ready to be written as the connection's status."""

    reason: str
    message: str
    version: str | None = None
    storage: str | None = None

    @property
    def ready(self) -> bool:
        return self.reason == CONNECTED


@dataclass
class _Entry:
    fingerprint: tuple[Any, ...] | None = None
    client: ZStackClient | None = None
    verdict: ConnectionVerdict | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _options(spec: ConnectionSpec, tls: Any) -> ClientOptions:
    return ClientOptions(
        context_path=spec.context_path,
        max_concurrent_requests=spec.max_concurrent_requests,
        request_timeout=float(spec.request_timeout_seconds),
        connect_timeout=min(CONNECT_TIMEOUT, float(spec.request_timeout_seconds)),
        ssl=tls,
    )


def _classify_login(error: ZStackError) -> str:
    if error.retryable:
        return UNREACHABLE
    if error.code in (ID_AUTHENTICATION, ID_PERMISSION_DENIED, HTTP):
        return AUTH_FAILED
    return AUTH_FAILED if error.code.startswith("ID.") else UNREACHABLE


async def _probe(client: ZStackClient, where: str, *, login: bool) -> ConnectionVerdict:
    """ready -> version -> login; ZStack's own error text is safe to show (it never echoes credentials).

    A client that already proved its login is not logged in again on every periodic check: each login is a
    new ZStack session, and the client re-logs in by itself when its session expires.
    """
    try:
        await client.check_ready()
    except ZStackError as error:
        reason = NOT_READY if error.code == SYS_NOT_READY else UNREACHABLE
        raise ConnectionProblem(reason, f"{where}: management node check failed: {error}") from None
    try:
        version = await client.get_version()
    except ZStackError as error:
        raise ConnectionProblem(UNREACHABLE, f"{where}: getVersion failed: {error}") from None
    if not version.supports_clock_track:
        raise ConnectionProblem(
            UNSUPPORTED, f"{where}: ZStack {version} has no SetVmClockTrack (needs >= 4.1.0)"
        )
    try:
        if login:
            await client.login()
    except ZStackError as error:
        raise ConnectionProblem(_classify_login(error), f"{where}: login failed: {error}") from None
    storage = version.storage_mode.value
    return ConnectionVerdict(
        CONNECTED, f"{where}: ZStack {version}, clock track kept as {storage}", str(version), storage
    )


class ConnectionManager:
    def __init__(self, reader: ObjectReader, *, on_call: OnCall | None = None) -> None:
        self._reader = reader
        self._on_call = on_call
        self._entries: dict[Key, _Entry] = {}

    def _entry(self, key: Key) -> _Entry:
        return self._entries.setdefault(key, _Entry())

    async def check(self, namespace: str, name: str, raw_spec: Mapping[str, Any]) -> ConnectionVerdict:
        """Build (or reuse) the client and verify it end to end; never raises for connection problems."""
        return await self._check(namespace, name, raw_spec, reuse=False)

    async def _check(
        self, namespace: str, name: str, raw_spec: Mapping[str, Any], *, reuse: bool
    ) -> ConnectionVerdict:
        """`reuse`: a verdict set while waiting for the lock is good enough (first uses by many policies at
        once share one check instead of each reading the Secret and probing ZStack)."""
        entry = self._entry((namespace, name))
        async with entry.lock:
            if reuse and entry.verdict is not None:
                return entry.verdict
            try:
                entry.verdict = await self._check_locked(
                    entry, namespace, name, parse_connection_spec(raw_spec)
                )
            except ConnectionProblem as problem:
                entry.verdict = ConnectionVerdict(problem.reason, str(problem))
            return entry.verdict

    async def _check_locked(
        self, entry: _Entry, namespace: str, name: str, spec: ConnectionSpec
    ) -> ConnectionVerdict:
        credentials, secret_version = await load_credentials(self._reader, namespace, spec)
        tls, ca_version = await load_tls(self._reader, namespace, spec)
        fingerprint = (spec, secret_version, ca_version)
        proven = entry.verdict is not None and entry.verdict.ready
        if entry.client is None or entry.fingerprint != fingerprint:
            proven = False
            await self._close(entry)
            try:
                options = _options(spec, tls)
                entry.client = ZStackClient(spec.endpoint, credentials, options, on_call=self._on_call)
            except ValueError as problem:
                raise ConnectionProblem(UNREACHABLE, f"spec.endpoint: {problem}") from None
            entry.fingerprint = fingerprint
            log.info("ZStackConnection %s/%s: client built for %s", namespace, name, spec.endpoint)
        return await _probe(entry.client, spec.endpoint, login=not proven)

    async def client_for(self, namespace: str, name: str, raw_spec: Mapping[str, Any] | None) -> ZStackClient:
        """The ready client for a policy's connection; ConnectionUnavailable says why there is none.

        `raw_spec` is the connection's spec when the caller has it (None: the object does not exist). The
        first use checks the connection; later uses reuse the verdict of the last check, which the
        connection's own periodic check keeps fresh.
        """
        where = f"ZStackConnection {namespace}/{name}"
        if raw_spec is None:
            raise ConnectionUnavailable(NOT_FOUND, f"{where} not found")
        entry = self._entry((namespace, name))
        verdict = entry.verdict or await self._check(namespace, name, raw_spec, reuse=True)
        if not verdict.ready or entry.client is None:
            raise ConnectionUnavailable(verdict.reason, f"{where} is not ready: {verdict.message}")
        return entry.client

    async def forget(self, namespace: str, name: str) -> None:
        entry = self._entries.pop((namespace, name), None)
        if entry is not None:
            async with entry.lock:
                await self._close(entry)

    async def close_all(self) -> None:
        for key in list(self._entries):
            await self.forget(*key)

    @staticmethod
    async def _close(entry: _Entry) -> None:
        client, entry.client, entry.fingerprint = entry.client, None, None
        if client is not None:
            try:
                await client.close()
            except Exception:  # closing is best effort: a dead node must not block the rebuild
                log.warning("closing a ZStack client failed", exc_info=True)
