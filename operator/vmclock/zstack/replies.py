"""Turn what a ZStack management node sends back into data or a ZStackError.

ZStack never sets a Content-Type, answers REST-layer problems in plain text, and puts every API failure in a
503 `{"error": ErrorCode}` (zstack-api.md §1, §4). A proxy in front of it may add HTML 502s. This module is
the one place that knows those shapes, so every caller classifies failures the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vmclock.zstack.errors import GARBAGE, HTTP, ErrorCode, ZStackError

_SNIPPET = 300  # enough of a plain-text/HTML body to diagnose, short enough for status and logs


@dataclass(frozen=True)
class Reply:
    """One HTTP answer: status, the JSON body if it parsed, and the text for diagnostics."""

    status: int
    body: Any
    text: str

    @classmethod
    def decode(cls, status: int, raw: bytes) -> Reply:
        """Parse JSON whatever the Content-Type says (ZStack sends none); keep non-JSON as text only."""
        text = raw.decode("utf-8", errors="replace")
        try:
            body = json.loads(text) if text.strip() else None
        except ValueError:
            body = None
        return cls(status=status, body=body, text=text)

    @property
    def error_body(self) -> dict[str, Any] | None:
        """The ErrorCode object if this is one of ZStack's `{"error": {...}}` bodies."""
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return self.body["error"]  # type: ignore[no-any-return]
        return None


def error_from_reply(reply: Reply, operation: str, redact: Callable[[str], str]) -> ZStackError:
    """Classify a non-success answer: ZStack ErrorCode, garbage 5xx (retryable) or REST-layer 4xx."""
    error = reply.error_body
    if error is not None:
        return ZStackError(
            ErrorCode.from_json(error).redacted(redact), http_status=reply.status, operation=operation
        )
    snippet = redact(reply.text.strip()[:_SNIPPET])
    if reply.status >= 500:
        description = f"HTTP {reply.status} without a ZStack error body"
        return ZStackError.client(
            GARBAGE, description, snippet, http_status=reply.status, operation=operation
        )
    description = f"HTTP {reply.status} from the REST layer"
    return ZStackError.client(HTTP, description, snippet, http_status=reply.status, operation=operation)


def garbage(operation: str, what: str, reply: Reply, redact: Callable[[str], str]) -> ZStackError:
    """A success status whose body is not what ZStack sends for this API."""
    snippet = redact(reply.text.strip()[:_SNIPPET])
    return ZStackError.client(GARBAGE, what, snippet, http_status=reply.status, operation=operation)


def success_body(reply: Reply, operation: str, redact: Callable[[str], str]) -> dict[str, Any]:
    """The JSON object of a 200 answer; anything else raises the matching ZStackError."""
    if reply.status != 200:
        raise error_from_reply(reply, operation, redact)
    if not isinstance(reply.body, dict):
        raise garbage(operation, "HTTP 200 whose body is not a JSON object", reply, redact)
    return reply.body
