"""Accounts and sessions as ZStack's identity module keeps them (zstack-api.md §3).

Passwords are stored as their SHA-512 hex digest and compared to what the client sends, exactly as
AccountLoginBackend does, so a client that sends the plain password fails like it would in production.
Sessions expire on a sliding window: every call that passes the session check pushes `expiredDate` out.
"""

from __future__ import annotations

import hashlib
import time
import uuid as uuidlib
from dataclasses import dataclass
from typing import Any

from vmclock.simulator.wire import gson_date

ADMIN_ACCOUNT_UUID = "36c27e8ff05c4780bf6d2fa65700f22e"  # the fixed uuid of ZStack's built-in admin


def account_uuid(name: str) -> str:
    return (
        ADMIN_ACCOUNT_UUID
        if name == "admin"
        else hashlib.md5(name.encode(), usedforsecurity=False).hexdigest()
    )


@dataclass
class Session:
    uuid: str
    account_name: str
    created: float
    expires: float

    def inventory(self) -> dict[str, Any]:
        owner = account_uuid(self.account_name)
        return {
            "uuid": self.uuid,
            "accountUuid": owner,
            "userUuid": owner,
            "userType": "AccountVO",
            "expiredDate": gson_date(self.expires),
            "createDate": gson_date(self.created),
        }


class SessionStore:
    """Account passwords (SHA-512 hex) and live sessions."""

    def __init__(self, accounts: dict[str, str], timeout: float) -> None:
        self._password_sha512 = {
            name: hashlib.sha512(password.encode("utf-8")).hexdigest() for name, password in accounts.items()
        }
        self.timeout = timeout
        self._sessions: dict[str, Session] = {}

    def login(self, account_name: str, password_sha512: str) -> Session | None:
        if self._password_sha512.get(account_name) != password_sha512:
            return None
        now = time.time()
        session = Session(uuidlib.uuid4().hex, account_name, now, now + self.timeout)
        self._sessions[session.uuid] = session
        return session

    def logout(self, session_uuid: str) -> None:
        self._sessions.pop(session_uuid, None)

    def valid(self, session_uuid: str) -> bool:
        session = self._sessions.get(session_uuid)
        return session is not None and session.expires > time.time()

    def renew(self, session_uuid: str) -> Session | None:
        """The session check of every authorized call: valid sessions get `now + timeout` again."""
        if not self.valid(session_uuid):
            self._sessions.pop(session_uuid, None)
            return None
        session = self._sessions[session_uuid]
        session.expires = time.time() + self.timeout
        return session

    def expire_all(self) -> None:
        self._sessions.clear()
