"""Scrub secrets from text that may end up in exceptions, logs, Events or status.

Error details come from places we do not control (a server's free-text message, an aiohttp exception that
quotes a URL such as the logout path, which holds the session id). The client knows its own secrets, so
every such text passes through one Redactor before it is put into a ZStackError.

Most secrets are fixed strings (a password, its SHA-512, a session id, an AccessKey secret). An AccessKey
signature is new on every request (it signs the Date), so it is masked by its shape instead.
"""

from __future__ import annotations

import re

MASK = "***"
_MIN_SECRET_LENGTH = 4  # shorter strings would mask ordinary words, and are no secret worth the name
_MIN_PARTIAL = 8  # a text cut before it got here may end in the head of a secret; from this long, mask it


class Redactor:
    """Replace every registered secret with `***`; callable so it can be passed where a str->str is wanted."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._patterns: list[re.Pattern[str]] = []

    def add(self, *secrets: str) -> None:
        self._secrets.update(s for s in secrets if len(s) >= _MIN_SECRET_LENGTH)

    def add_pattern(self, pattern: re.Pattern[str]) -> None:
        """Mask every match of `pattern` too: for secrets that change with each request."""
        if pattern not in self._patterns:
            self._patterns.append(pattern)

    def __call__(self, text: str) -> str:
        """`text` with every secret masked, also one cut short at its end (server texts are bounded before
        they get here). Cut the result freely: after masking, no cut can leave the head of a secret."""
        # Longest first, so a secret that contains another one is masked whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        for pattern in self._patterns:
            text = pattern.sub(MASK, text)
        return self._mask_cut_tail(text)

    def _mask_cut_tail(self, text: str) -> str:
        for secret in self._secrets:
            for length in range(len(secret) - 1, _MIN_PARTIAL - 1, -1):
                if text.endswith(secret[:length]):
                    return text[:-length] + MASK
        return text

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets, {len(self._patterns)} patterns)"
