"""ZStack credentials, shaped so a secret can never leak through repr, str or logging."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class AccountCredentials:
    """Account login; ZStack wants the lowercase SHA-512 hex of the password, never the password itself."""

    account_name: str
    password: str = field(repr=False)

    @property
    def password_sha512(self) -> str:
        return hashlib.sha512(self.password.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AccessKeyCredentials:
    """AccessKey signing: every request carries `ZStack <id>:<HMAC-SHA1 signature>` and a Date header."""

    access_key_id: str
    access_key_secret: str = field(repr=False)


Credentials = AccountCredentials | AccessKeyCredentials
