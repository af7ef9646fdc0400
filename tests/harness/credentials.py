"""Random, recognisable ZStack credentials for one run, and every form in which they could leak.

Unique values (instead of the simulator's default ``admin``/``password``) make a leak scan meaningful: a
match can only come from the operator copying a secret, never from an innocent word in a log line.

Most forms are fixed strings. An AccessKey signature is not: it signs the request's Date, so each request
has a new one, and it is as good as the secret for replaying that request. It is found by its shape instead,
the key id followed by ``:`` and base64 (``Authorization: ZStack <accessKeyId>:<signature>``).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass, field

SIGNATURE = "access key signature"
MIN_SIGNATURE_CHARS = 20
"""An HMAC-SHA1 signature is 27 base64 characters and ``=``; 20 also catches one that a log line cut short."""


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

    def signature_pattern(self) -> re.Pattern[str]:
        """``<accessKeyId>:<base64>``; the masked ``<accessKeyId>:***`` does not match."""
        return re.compile(re.escape(self.key_id) + f":[A-Za-z0-9+/]{{{MIN_SIGNATURE_CHARS},}}")

    def leaks_in(self, text: str) -> list[str]:
        """Labels (never values) of the secret forms found in ``text``."""
        found = [label for label, value in self.leak_forms().items() if value in text]
        if self.signature_pattern().search(text):
            found.append(SIGNATURE)
        return found
