"""Random, recognisable ZStack credentials for one run, and every form in which they could leak.

Unique values (instead of the simulator's default ``admin``/``password``) make a leak scan meaningful: a
match can only come from the operator copying a secret, never from an innocent word in a log line.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field


def _token(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


@dataclass(frozen=True)
class RunCredentials:
    """An account and an access key the simulator accepts, plus a password it rejects."""

    account: str = "admin"
    password: str = field(default_factory=lambda: _token("pw"), repr=False)
    key_id: str = field(default_factory=lambda: _token("key"))
    key_secret: str = field(default_factory=lambda: _token("ks"), repr=False)
    wrong_password: str = field(default_factory=lambda: _token("bad"), repr=False)

    @property
    def simulator_accounts(self) -> list[tuple[str, str]]:
        return [(self.account, self.password)]

    @property
    def simulator_access_keys(self) -> list[tuple[str, str]]:
        return [(self.key_id, self.key_secret)]

    def leak_forms(self) -> dict[str, str]:
        """Label -> value for every secret and its derived forms (SHA-512 hex, base64 as in a Secret)."""
        forms: dict[str, str] = {}
        for label, value in (
            ("password", self.password),
            ("wrong password", self.wrong_password),
            ("access key secret", self.key_secret),
        ):
            forms[label] = value
            forms[f"{label} (SHA-512 hex)"] = hashlib.sha512(value.encode()).hexdigest()
            forms[f"{label} (base64)"] = base64.b64encode(value.encode()).decode()
        return forms

    def leaks_in(self, text: str) -> list[str]:
        """Labels (never values) of the secret forms found in ``text``."""
        return [label for label, value in self.leak_forms().items() if value in text]
