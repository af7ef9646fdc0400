"""Authentication: an account session (login once, reuse, log out) or AccessKey request signing.

Both hand out a *grant* (the session id a request used, or None for AccessKey) so that a caller who gets
ID.1001 can drop exactly the session that failed: when 200 concurrent calls see the same expired session,
the first one drops it, one shared login follows, and the others simply pick the new session up.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
import time
from collections.abc import Callable
from typing import Protocol

from vmclock.zstack.credentials import AccessKeyCredentials, AccountCredentials
from vmclock.zstack.errors import ZStackError
from vmclock.zstack.observe import OnCall, observed
from vmclock.zstack.replies import garbage, success_body
from vmclock.zstack.transport import Transport

log = logging.getLogger(__name__)

LOGIN_API = "LogInByAccount"
LOGOUT_API = "LogOut"

# An HMAC-SHA1 signature in base64: 20 bytes make 27 characters and one `=`. Matched standalone, so longer
# base64 runs (or a hex id followed by `=`) are left alone.
SIGNATURE_RE = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{27}=(?![A-Za-z0-9+/=])")

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class Authorizer(Protocol):
    """What the request pipeline needs from either authentication scheme."""

    renewable: bool  # True when a fresh login can cure ID.1001

    async def grant(self) -> str | None: ...

    def headers(self, grant: str | None, method: str, api_path: str) -> dict[str, str]: ...

    def discard(self, grant: str | None) -> bool: ...

    async def logout(self) -> None: ...


class SessionAuth:
    """Account login (`PUT /v1/accounts/login`, SHA-512 hex password) with one shared, reused session."""

    renewable = True

    def __init__(self, credentials: AccountCredentials, transport: Transport, on_call: OnCall | None) -> None:
        self._credentials = credentials
        self._transport = transport
        self._on_call = on_call
        self._session: str | None = None
        self._pending: asyncio.Task[str] | None = None
        transport.redact.add(credentials.password, credentials.password_sha512)

    def __repr__(self) -> str:
        return f"SessionAuth(account={self._credentials.account_name!r})"

    async def grant(self) -> str:
        """The current session id, logging in first if there is none (one login shared by all waiters)."""
        if self._session is not None:
            return self._session
        if self._pending is None or self._pending.done():
            self._pending = asyncio.create_task(self._login())
            self._pending.add_done_callback(_consume_exception)
        # shield: a caller that gives up must not cancel the login the other callers are waiting for.
        return await asyncio.shield(self._pending)

    def headers(self, grant: str | None, method: str, api_path: str) -> dict[str, str]:
        return {"Authorization": f"OAuth {grant}"} if grant else {}

    def discard(self, grant: str | None) -> bool:
        """Forget `grant` if it is still current; the next `grant()` then logs in again."""
        if grant is not None and self._session == grant:
            self._session = None
        return True

    async def _login(self) -> str:
        body = {
            "logInByAccount": {
                "accountName": self._credentials.account_name,
                "password": self._credentials.password_sha512,
            }
        }
        with observed(self._on_call, LOGIN_API):
            reply = await self._transport.send("PUT", "/v1/accounts/login", body=body, operation=LOGIN_API)
            inventory = success_body(reply, LOGIN_API, self._transport.redact).get("inventory")
            session = inventory.get("uuid") if isinstance(inventory, dict) else None
            if not isinstance(session, str) or not session:
                raise garbage(LOGIN_API, "login reply without inventory.uuid", reply, self._transport.redact)
        self._transport.redact.add(session)
        self._session = session
        log.info("logged in to ZStack as account %s", self._credentials.account_name)
        return session

    async def logout(self) -> None:
        """Best-effort `DELETE /v1/accounts/sessions/{id}`: a failed logout leaves a session to expire."""
        if self._pending is not None and not self._pending.done():
            self._pending.cancel()
        session, self._session = self._session, None
        if session is None:
            return
        try:
            with observed(self._on_call, LOGOUT_API):
                reply = await self._transport.send(
                    "DELETE", f"/v1/accounts/sessions/{session}", operation=LOGOUT_API
                )
                success_body(reply, LOGOUT_API, self._transport.redact)
        except ZStackError as err:
            log.warning("ZStack logout failed (%s); the session will expire on its own", err.code)


def _consume_exception(task: asyncio.Task[str]) -> None:
    """Mark a login failure as seen even when every waiter was cancelled (no "never retrieved" noise)."""
    if not task.cancelled():
        task.exception()


class AccessKeyAuth:
    """`Authorization: ZStack <id>:<signature>` plus `Date` on every request; nothing to log in or out."""

    renewable = False

    def __init__(
        self, credentials: AccessKeyCredentials, transport: Transport, clock: Callable[[], float]
    ) -> None:
        self._credentials = credentials
        self._clock = clock
        transport.redact.add(credentials.access_key_secret)
        # Each signature is replayable for the same request for 15 minutes (ZStack's allowed skew).
        transport.redact.add_pattern(SIGNATURE_RE)

    def __repr__(self) -> str:
        return f"AccessKeyAuth(access_key_id={self._credentials.access_key_id!r})"

    async def grant(self) -> None:
        return None

    def headers(self, grant: str | None, method: str, api_path: str) -> dict[str, str]:
        date = http_date(self._clock())
        signature = sign(self._credentials.access_key_secret, method, date, api_path)
        return {"Date": date, "Authorization": f"ZStack {self._credentials.access_key_id}:{signature}"}

    def discard(self, grant: str | None) -> bool:
        return False

    async def logout(self) -> None:
        return None


def sign(secret: str, method: str, date: str, api_path: str) -> str:
    """base64(HMAC-SHA1(secret, METHOD\\nDate\\n/v1/...)); the path has no context path and no query."""
    message = f"{method}\n{date}\n{api_path}".encode()
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def http_date(timestamp: float) -> str:
    """`EEE, dd MMM yyyy HH:mm:ss z` in *local* time, as ZStack's SDKs send it.

    ZStack compares only the date-time digits with its own local clock (rest.checkTimeZone=false), so the
    operator must run in the management node's time zone (TZ) for AccessKey auth; the zone name is
    informational. Day and month names are fixed English, whatever the process locale.
    """
    local = time.localtime(timestamp)
    return (
        f"{_DAYS[local.tm_wday]}, {local.tm_mday:02d} {_MONTHS[local.tm_mon - 1]} {local.tm_year} "
        f"{local.tm_hour:02d}:{local.tm_min:02d}:{local.tm_sec:02d} {local.tm_zone}"
    )
