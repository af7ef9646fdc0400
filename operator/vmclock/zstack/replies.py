"""Turn what a ZStack management node sends back into data or a ZStackError.

ZStack never sets a Content-Type, answers REST-layer problems in plain text, and puts every API failure in a
503 `{"error": ErrorCode}` (zstack-api.md §1, §4). A proxy in front of it may add HTML 502s. This module is
the one place that knows those shapes, so every caller classifies failures the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vmclock.zstack import jsonguard, jsonstream
from vmclock.zstack.errors import GARBAGE, HTTP, REDIRECT, ErrorCode, ZStackError

_SNIPPET = 300  # enough of a plain-text/HTML body to diagnose, short enough for status and logs
_HEAD = 4 * _SNIPPET  # bytes of the body kept as text: a snippet's worth even after stripping


@dataclass(frozen=True)
class Reply:
    """One HTTP answer: status, the JSON body if it parsed, the head of the body as text for diagnostics."""

    status: int
    body: Any
    text: str

    @classmethod
    async def read(
        cls, status: int, raw: bytes, before_decoding: jsonstream.BeforeDecoding | None = None
    ) -> Reply:
        """Parse JSON whatever the Content-Type says (ZStack sends none); keep non-JSON as text only. A large
        body is decoded in slices (jsonstream), the event loop running between them; `before_decoding` as
        there.

        Raises jsonguard.ReplyRejected for JSON too deep or too big to decode."""
        body = None
        if jsonguard.looks_like_json(raw):
            try:
                body = await jsonstream.decode(raw, before_decoding)
            except ValueError:
                body = None
        return cls(status=status, body=body, text=_head(raw))

    @property
    def error_body(self) -> dict[str, Any] | None:
        """The ErrorCode object if this is one of ZStack's `{"error": {...}}` bodies."""
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return self.body["error"]  # type: ignore[no-any-return]
        return None


def _head(raw: bytes) -> str:
    return raw[:_HEAD].decode("utf-8", errors="replace")


def error_from_reply(reply: Reply, operation: str, redact: Callable[[str], str]) -> ZStackError:
    """Classify a non-success answer: ZStack ErrorCode, garbage 5xx (retryable) or REST-layer 4xx/3xx."""
    if 300 <= reply.status < 400:
        # ZStack never redirects; the transport never follows one (it could carry the Authorization header
        # to another host). Terminal: the endpoint is misconfigured or hostile either way.
        description = f"HTTP {reply.status} redirect from the endpoint; redirects are not followed"
        return ZStackError.client(REDIRECT, description, http_status=reply.status, operation=operation)
    error = reply.error_body
    if error is not None:
        return ZStackError(
            ErrorCode.from_json(error).redacted(redact), http_status=reply.status, operation=operation
        )
    snippet = redact(reply.text.strip())[:_SNIPPET]
    if reply.status >= 500:
        description = f"HTTP {reply.status} without a ZStack error body"
        return ZStackError.client(
            GARBAGE, description, snippet, http_status=reply.status, operation=operation
        )
    description = f"HTTP {reply.status} from the REST layer"
    return ZStackError.client(HTTP, description, snippet, http_status=reply.status, operation=operation)


def garbage(operation: str, what: str, reply: Reply, redact: Callable[[str], str]) -> ZStackError:
    """A success status whose body is not what ZStack sends for this API."""
    snippet = redact(reply.text.strip())[:_SNIPPET]
    return ZStackError.client(GARBAGE, what, snippet, http_status=reply.status, operation=operation)


def success_body(reply: Reply, operation: str, redact: Callable[[str], str]) -> dict[str, Any]:
    """The JSON object of a 200 answer; anything else raises the matching ZStackError."""
    if reply.status != 200:
        raise error_from_reply(reply, operation, redact)
    if not isinstance(reply.body, dict):
        raise garbage(operation, "HTTP 200 whose body is not a JSON object", reply, redact)
    return reply.body
