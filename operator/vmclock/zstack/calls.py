"""The request pipeline every ZStack API goes through: authenticate, send, observe, retry, re-login.

Rules applied here, once, for sync and async APIs alike (zstack-api.md §3, §4):
- retryable failures (transport, garbage 5xx, SYS.1001/1010/1012) are retried with full-jitter backoff;
- ID.1001 (invalid or expired session) drops the session, logs in again once and resubmits; an async API
  is resubmitted under a new X-Job-UUID because every attempt draws a fresh one;
- everything else is final and raised at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from vmclock.backoff import Backoff
from vmclock.zstack.auth import Authorizer
from vmclock.zstack.errors import MaySend, ZStackError
from vmclock.zstack.jobs import JobRunner
from vmclock.zstack.observe import OnCall, observed
from vmclock.zstack.options import ClientOptions, Endpoint
from vmclock.zstack.replies import success_body
from vmclock.zstack.retry import RetryPolicy
from vmclock.zstack.transport import Transport

T = TypeVar("T")

SINGLE_ATTEMPT = RetryPolicy(attempts=1, backoff=Backoff(base=0.0, cap=0.0))  # never waits


class Api:
    """Calls ZStack APIs by name; one instance per client, shared by the query and clock-track layers."""

    def __init__(
        self,
        transport: Transport,
        auth: Authorizer,
        retry: RetryPolicy,
        jobs: JobRunner,
        on_call: OnCall | None,
    ) -> None:
        self.transport = transport
        self.auth = auth
        self._retry = retry
        self._jobs = jobs
        self._on_call = on_call

    @property
    def endpoint(self) -> Endpoint:
        return self.transport.endpoint

    @property
    def options(self) -> ClientOptions:
        return self.transport.options

    async def sync(
        self,
        api: str,
        method: str,
        api_path: str,
        *,
        query: str = "",
        body: Mapping[str, Any] | None = None,
        authorized: bool = True,
        retry: bool = True,
    ) -> dict[str, Any]:
        """A synchronous API (queries, Get*, getVersion): the 200 body, or the error raised."""

        async def attempt(grant: str | None) -> dict[str, Any]:
            headers = self.auth.headers(grant, method, api_path) if authorized else {}
            reply = await self.transport.send(
                method, api_path, query=query, body=body, headers=headers, operation=api
            )
            return success_body(reply, api, self.transport.redact)

        return await self._call(
            api, attempt, authorized=authorized, policy=self._retry if retry else SINGLE_ATTEMPT
        )

    async def job(
        self,
        api: str,
        method: str,
        api_path: str,
        body: Mapping[str, Any],
        *,
        may_send: MaySend | None = None,
        retry: bool = True,
    ) -> dict[str, Any]:
        """An async API: submit, poll to the end, return the job's 200 body. `may_send` is asked before
        every submit (a retry's too), once a request slot is held: see Transport.send. `retry=False` for an
        API that must not run twice (a reboot): one submit, only an expired session is logged in again."""

        async def attempt(grant: str | None) -> dict[str, Any]:
            def headers(verb: str, path: str) -> dict[str, str]:
                return self.auth.headers(grant, verb, path)

            return await self._jobs.run(api, method, api_path, body, headers, may_send=may_send)

        return await self._call(
            api, attempt, authorized=True, policy=self._retry if retry else SINGLE_ATTEMPT
        )

    async def _call(
        self,
        api: str,
        attempt: Callable[[str | None], Awaitable[T]],
        *,
        authorized: bool,
        policy: RetryPolicy,
    ) -> T:
        grant: str | None = None
        relogged = False

        async def once() -> T:
            nonlocal grant
            grant = await self.auth.grant() if authorized else None
            with observed(self._on_call, api):
                return await attempt(grant)

        def recover(err: ZStackError) -> bool:
            nonlocal relogged
            if not (authorized and err.session_expired and self.auth.renewable) or relogged:
                return False
            relogged = True
            return self.auth.discard(grant)

        return await policy.run(once, operation=api, recover=recover)
