"""One ready ZStackClient per ZStackConnection, cached and rebuilt only when something it depends on changes.

A client holds an aiohttp session and a ZStack login; building one per reconcile would log in thousands of
times a day. So the manager keys clients by (namespace, name) and fingerprints what they were built from:
the connection spec, the Secret's resourceVersion and the CA object's resourceVersion. A check with the same
fingerprint reuses the client; a different one builds a new one. Every check walks the same ladder
(Secret -> TLS -> ready -> version -> login) and stops at the first rung that fails, which becomes the
connection's `Ready` reason.

Clients are used through `lease` (design.md §5.8):
- a lease re-reads the Secret when the last look is older than a few seconds, so a rotation is noticed at
  the next use, not at the connection's next periodic check;
- a client replaced by a rebuild is retired, not closed: requests in flight on it finish, and it is closed
  when its last lease ends;
- a lease for a restore may use the last client that proved to work even when the connection or its Secret
  is gone (a namespace deletion removes them together with the policy that still has VMs to put back).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from vmclock.connections.leased import FRESH_SECONDS, LeasedClient
from vmclock.connections.optin import HTTP_FORBIDDEN, OperatorAccount, namespace_not_enabled
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
from vmclock.connections.trust import EndpointPolicy, endpoint_origin
from vmclock.engine.reconcile import ConnectionUnavailable
from vmclock.kubeapi import KubeApiError
from vmclock.refs import Ref
from vmclock.zstack import ClientOptions, Credentials, OnCall, ZStackClient, ZStackError
from vmclock.zstack.errors import HTTP, ID_AUTHENTICATION, ID_PERMISSION_DENIED, SYS_NOT_READY
from vmclock.zstack.options import Endpoint

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class ConnectionVerdict:
    """The outcome of one check, ready to be written as the connection's status; `refused`: the endpoint
    rules forbid sending (ConnectionProblem.refused), which no restore may get around."""

    reason: str
    message: str
    version: str | None = None
    storage: str | None = None
    refused: bool = False

    @property
    def ready(self) -> bool:
        return self.reason == CONNECTED


@dataclass(frozen=True)
class _Looked:
    """What one look at a connection's objects found: their fingerprint, and what a client is built from."""

    fingerprint: tuple[Any, ...]
    credentials: Credentials
    tls: ssl.SSLContext | Literal[False] | None


@dataclass
class _Entry:
    fingerprint: tuple[Any, ...] | None = None
    client: ZStackClient | None = None
    verdict: ConnectionVerdict | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    looked_at: float = float("-inf")  # when the Secret/CA fingerprint was last compared
    proven: ZStackClient | None = None  # the last client that passed a check: last-known-good for restores

    def built_from_another(self, spec: ConnectionSpec) -> bool:
        """Its client was built from another spec than the one a lease asks with (the first element of the
        fingerprint is the spec): that lease looks again at once, not when the last look gets old."""
        return self.fingerprint is not None and self.fingerprint[0] != spec


def _options(spec: ConnectionSpec, tls: Any) -> ClientOptions:
    return ClientOptions(
        context_path=spec.context_path,
        max_concurrent_requests=spec.max_concurrent_requests,
        request_timeout=float(spec.request_timeout_seconds),
        connect_timeout=min(CONNECT_TIMEOUT, float(spec.request_timeout_seconds)),
        ssl=tls,
    )


def _verdict_of(problem: ConnectionProblem) -> ConnectionVerdict:
    return ConnectionVerdict(problem.reason, str(problem), refused=problem.refused)


def _classify_login(error: ZStackError) -> str:
    if error.retryable:
        return UNREACHABLE
    if error.code in (ID_AUTHENTICATION, ID_PERMISSION_DENIED, HTTP):
        return AUTH_FAILED
    return AUTH_FAILED if error.code.startswith("ID.") else UNREACHABLE


def _terse(error: ZStackError) -> str:
    """An error of an endpoint that has not yet proven to be ZStack, without its reply text: whatever such
    a server answers (an internal web page, another service's banner) must not be echoed into status,
    which would turn connections into a probe of the internal network (design.md §6.2)."""
    status = f" (HTTP {error.http_status})" if error.http_status is not None else ""
    return f"{error.code}{status}; reply text not shown until the endpoint has answered as ZStack"


async def _probe(client: ZStackClient, where: str, *, login: bool) -> ConnectionVerdict:
    """ready -> version -> login; ZStack's own error text is safe to show (it never echoes credentials).

    A client that already proved its login is not logged in again on every periodic check: each login is a
    new ZStack session, and the client re-logs in by itself when its session expires.
    """
    try:
        await client.check_ready()
    except ZStackError as error:
        reason = NOT_READY if error.code == SYS_NOT_READY else UNREACHABLE
        raise ConnectionProblem(reason, f"{where}: management node check failed: {_terse(error)}") from None
    try:
        version = await client.get_version()
    except ZStackError as error:
        raise ConnectionProblem(UNREACHABLE, f"{where}: getVersion failed: {_terse(error)}") from None
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


def management_node(endpoint: Endpoint) -> str:
    """One spelling per management node, however its endpoint is written: the normalized origin (default
    port explicit, host case and trailing dot ignored) plus the context path. Policies whose connections
    give the same node compete for the same VMs (design.md §6.3)."""
    return f"{endpoint_origin(endpoint.origin)}{endpoint.context_path}"


class ConnectionManager:
    def __init__(
        self,
        reader: ObjectReader,
        *,
        on_call: OnCall | None = None,
        endpoints: EndpointPolicy | None = None,
        account: OperatorAccount | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reader = reader
        self._endpoints = endpoints or EndpointPolicy()
        self._account = account or OperatorAccount.from_environment()
        self._on_call = on_call
        self._clock = clock
        self._entries: dict[Ref, _Entry] = {}
        self._leases: dict[ZStackClient, int] = {}
        self._retired: set[ZStackClient] = set()

    def _entry(self, key: Ref) -> _Entry:
        return self._entries.setdefault(key, _Entry())

    async def check(self, namespace: str, name: str, raw_spec: Mapping[str, Any]) -> ConnectionVerdict:
        """Build (or reuse) the client and verify it end to end; never raises for connection problems."""
        return await self._check(namespace, name, raw_spec, reuse=False)

    async def _check(
        self, namespace: str, name: str, raw_spec: Mapping[str, Any], *, reuse: bool
    ) -> ConnectionVerdict:
        """`reuse`: a verdict set while waiting for the lock is good enough (first uses by many policies at
        once share one check instead of each reading the Secret and probing ZStack)."""
        entry = self._entry(Ref(namespace, name))
        async with entry.lock:
            if reuse and entry.verdict is not None:
                return entry.verdict
            return await self._verify_locked(entry, namespace, name, parse_connection_spec(raw_spec))

    async def _verify_locked(
        self, entry: _Entry, namespace: str, name: str, spec: ConnectionSpec, looked: _Looked | None = None
    ) -> ConnectionVerdict:
        """Called with the entry's lock held: the full ladder, its verdict stored on the entry (a client
        that passes becomes the last-known-good one). `looked`: the Secret/CA already read for this look."""
        try:
            entry.verdict = await self._check_locked(entry, namespace, name, spec, looked)
        except ConnectionProblem as problem:
            entry.verdict = _verdict_of(problem)
        await self._promote(entry)
        return entry.verdict

    async def _look(self, namespace: str, spec: ConnectionSpec) -> _Looked:
        """Read the Secret (and CA) once; the endpoint rules are checked before anything else is done.
        A 403 means the namespace has not opted in (no RoleBinding to vmclock-tenant there)."""
        try:
            credentials, secret = await load_credentials(self._reader, namespace, spec, self._endpoints)
            tls, ca_version = await load_tls(self._reader, namespace, spec, secret)
        except KubeApiError as error:
            if error.status == HTTP_FORBIDDEN:
                raise namespace_not_enabled(namespace, self._account) from None
            raise
        return _Looked((spec, secret.resource_version, ca_version), credentials, tls)

    async def _check_locked(
        self, entry: _Entry, namespace: str, name: str, spec: ConnectionSpec, looked: _Looked | None
    ) -> ConnectionVerdict:
        entry.looked_at = self._clock()
        if looked is None:
            try:
                looked = await self._look(namespace, spec)
            except ConnectionProblem:
                entry.fingerprint = None  # refused inputs prove nothing: the next look checks in full
                raise
        proven = entry.verdict is not None and entry.verdict.ready
        if entry.client is None or entry.fingerprint != looked.fingerprint:
            proven = False
            await self._retire(entry)
            try:
                options = _options(spec, looked.tls)
                entry.client = ZStackClient(spec.endpoint, looked.credentials, options, on_call=self._on_call)
            except ValueError as problem:
                raise ConnectionProblem(UNREACHABLE, f"spec.endpoint: {problem}") from None
            entry.fingerprint = looked.fingerprint
            log.info("ZStackConnection %s/%s: client built for %s", namespace, name, spec.endpoint)
        return await _probe(entry.client, spec.endpoint, login=not proven)

    async def _current(
        self, namespace: str, name: str, raw_spec: Mapping[str, Any]
    ) -> tuple[ZStackClient | None, ConnectionVerdict]:
        """The client to use now: re-checked when the Secret, CA or spec changed since the last look, and at
        once when the spec asked with is not the one the client was built from."""
        entry = self._entry(Ref(namespace, name))
        if entry.verdict is None:
            verdict = await self._check(namespace, name, raw_spec, reuse=True)
            return entry.client, verdict
        spec = parse_connection_spec(raw_spec)

        def due() -> bool:
            return entry.built_from_another(spec) or self._clock() - entry.looked_at >= FRESH_SECONDS

        if due():
            async with entry.lock:
                if due():
                    await self._look_again(entry, namespace, name, raw_spec)
        return entry.client, entry.verdict

    async def _look_again(
        self, entry: _Entry, namespace: str, name: str, raw_spec: Mapping[str, Any]
    ) -> None:
        """Called with the entry's lock held: compare fingerprints, and rebuild only if they differ."""
        spec = parse_connection_spec(raw_spec)
        entry.looked_at = self._clock()
        try:
            looked = await self._look(namespace, spec)
        except ConnectionProblem as problem:
            entry.verdict = _verdict_of(problem)
            entry.fingerprint = None  # refused inputs prove nothing: the next look checks in full
            return
        if looked.fingerprint != entry.fingerprint:
            await self._verify_locked(entry, namespace, name, spec, looked)

    async def _promote(self, entry: _Entry) -> None:
        """A client that just passed its check becomes the last-known-good one; the one before it retires."""
        if not (entry.verdict is not None and entry.verdict.ready and entry.client is not None):
            return
        previous, entry.proven = entry.proven, entry.client
        if previous is not None and previous is not entry.client:
            await self._retire_client(previous)

    @asynccontextmanager
    async def lease(
        self,
        namespace: str,
        name: str,
        raw_spec: Mapping[str, Any] | None,
        *,
        for_restore: bool = False,
    ) -> AsyncIterator[LeasedClient]:
        """The ready client of a connection for one reconcile; ConnectionUnavailable says why there is none.
        It is looked at again while in use (`leased.py`): a rotation or revocation is noticed within seconds.

        `raw_spec` is the connection's spec when the object exists and is not being deleted (None
        otherwise). `for_restore`: fall back to the last-known-good client when the connection, its Secret
        or its check is gone or failing, because putting VMs back must not depend on objects that a
        namespace deletion removes first."""
        leased = LeasedClient(
            self, lambda: self._client_for(namespace, name, raw_spec, for_restore=for_restore)
        )
        await leased.start()
        try:
            yield leased
        finally:
            await leased.release()

    def acquire(self, client: ZStackClient) -> None:
        """A use of `client` begins: it is not closed, even when retired, until every use has ended."""
        self._leases[client] = self._leases.get(client, 0) + 1

    async def release(self, client: ZStackClient) -> None:
        self._leases[client] -= 1
        if not self._leases[client]:
            del self._leases[client]
            if client in self._retired:
                self._retired.discard(client)
                await _close(client)

    async def _client_for(
        self, namespace: str, name: str, raw_spec: Mapping[str, Any] | None, *, for_restore: bool
    ) -> ZStackClient:
        where = f"ZStackConnection {namespace}/{name}"
        known = self._entries.get(Ref(namespace, name))
        proven = known.proven if known is not None else None
        if raw_spec is None:
            if for_restore and proven is not None:
                return proven
            raise ConnectionUnavailable(NOT_FOUND, f"{where} not found")
        client, verdict = await self._current(namespace, name, raw_spec)
        if verdict.ready and client is not None:
            return client
        # A restore may outlive the connection's objects, never the endpoint rules: credentials the Secret's
        # owner (or the cluster admin) no longer allows there are not sent there again, not even to restore.
        if for_restore and proven is not None and not verdict.refused:
            log.info("%s is not ready (%s): restoring with its last-known-good client", where, verdict.reason)
            return proven
        raise ConnectionUnavailable(verdict.reason, f"{where} is not ready: {verdict.message}")

    def node(self, namespace: str, name: str) -> str | None:
        """Which management node a Ready connection reaches (`management_node`); None unless Ready."""
        entry = self._entries.get(Ref(namespace, name))
        if entry is None or entry.client is None or entry.verdict is None or not entry.verdict.ready:
            return None
        return management_node(entry.client.endpoint)

    async def forget(self, namespace: str, name: str) -> None:
        entry = self._entries.pop(Ref(namespace, name), None)
        if entry is not None:
            async with entry.lock:
                await self._retire(entry)
                if entry.proven is not None:
                    await self._retire_client(entry.proven)

    async def close_all(self) -> None:
        for key in list(self._entries):
            await self.forget(*key)

    async def _retire(self, entry: _Entry) -> None:
        """Detach the entry's client; the last-known-good one stays until a newer client proves itself."""
        client, entry.client, entry.fingerprint = entry.client, None, None
        if client is not None and client is not entry.proven:
            await self._retire_client(client)

    async def _retire_client(self, client: ZStackClient) -> None:
        """Close now if unused, else when its last lease ends: requests in flight are never cut off."""
        if self._leases.get(client):
            self._retired.add(client)
        else:
            await _close(client)


async def _close(client: ZStackClient) -> None:
    try:
        await client.close()
    except Exception:  # closing is best effort: a dead node must not block the rebuild
        log.warning("closing a ZStack client failed", exc_info=True)
