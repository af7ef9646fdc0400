"""One typed error for everything that can go wrong talking to ZStack.

ZStack reports every API-level failure as HTTP 503 with an ErrorCode body, and REST-layer problems as
plain-text 4xx. Callers (the reconcile engine, the status writer) need one shape to classify and report,
so transport failures and garbage responses are folded into the same class with client-side codes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

# Client-side codes for failures that never produced a ZStack ErrorCode.
TRANSPORT = "CLIENT.TRANSPORT"  # connection refused/reset, TLS failure, dropped connection
TIMEOUT = "CLIENT.TIMEOUT"  # request or job polling exceeded its deadline
GARBAGE = "CLIENT.GARBAGE"  # a 5xx or 200 whose body is not the JSON ZStack would send
HTTP = "CLIENT.HTTP"  # plain-text 4xx from the REST layer; http_status says which
JOB_EXPIRED = "CLIENT.JOB_EXPIRED"  # 404 on a job we submitted: purged, or the submit never reached the store
# A submitted job that did not end (or could not be polled) within its apiTimeout. Not retryable: the job is
# stored and may still run, so resubmitting would only queue a second copy behind it.
JOB_TIMEOUT = "CLIENT.JOB_TIMEOUT"
# Replies that break a bound the client sets (design §6.2). Not retryable: asking again gets the same answer,
# and a hostile endpoint must cost one bounded exchange, not five.
REPLY_TOO_LARGE = "CLIENT.REPLY_TOO_LARGE"  # a body over max_reply_bytes, or a listing over max_listing_rows
BAD_REPLY = "CLIENT.BAD_REPLY"  # JSON too deep or too big to decode, more rows than asked, no version
REDIRECT = "CLIENT.REDIRECT"  # a 3xx: never followed, it could carry credentials to another host
UNEXPECTED = "CLIENT.UNEXPECTED"  # the engine's code for a failure that is no answer of ZStack's

# Longest texts kept from a server's ErrorCode: what status.vms[].error shows, and short enough to log on
# every check. Parsing keeps at most _PARSE_MAX characters; `redacted` masks secrets and then cuts to these,
# in that order, so a cut can never leave the visible head of a secret behind.
CODE_MAX = 128
UNKNOWN = "UNKNOWN"
# ZStack's codes are `<PREFIX>.<id>` (SYS.1001, ID.1001, VM.1010, zstack-api.md §4). Anything else is not
# kept: the code is shown and logged everywhere, so it must never carry a server's free text (or a secret).
_CODE = re.compile(r"^[A-Z][A-Z0-9_]{0,31}\.[A-Z0-9_]{1,32}$")
DESCRIPTION_MAX = 256
DETAILS_MAX = 512
_PARSE_MAX = 4096

# ZStack codes the operator treats specially (zstack-api.md §4).
SYS_TIMEOUT = "SYS.1001"
SYS_RESOURCE_NOT_FOUND = "SYS.1003"
SYS_INVALID_ARGUMENT = "SYS.1007"
SYS_NOT_READY = "SYS.1010"
SYS_MN_UNAVAILABLE = "SYS.1012"
ID_AUTHENTICATION = "ID.1000"
ID_INVALID_SESSION = "ID.1001"
ID_PERMISSION_DENIED = "ID.1002"

RETRYABLE_CODES = frozenset({TRANSPORT, TIMEOUT, GARBAGE, SYS_TIMEOUT, SYS_NOT_READY, SYS_MN_UNAVAILABLE})

# Every code this client knows: ZStack's common codes and VmErrors (zstack-api.md §4) and the client's own.
# Metric labels take only these (design §6.6): any `X.Y` code passes parsing, so an endpoint choosing its
# codes could otherwise add a series per reply, never removed. Status and Events still show the real code.
KNOWN_CODES = frozenset(
    {
        "SYS.1000",
        SYS_TIMEOUT,
        SYS_RESOURCE_NOT_FOUND,
        "SYS.1006",
        SYS_INVALID_ARGUMENT,
        SYS_NOT_READY,
        SYS_MN_UNAVAILABLE,
        ID_AUTHENTICATION,
        ID_INVALID_SESSION,
        ID_PERMISSION_DENIED,
        "ID.1006",
        *(f"VM.{n}" for n in range(1000, 1018)),
        TRANSPORT,
        TIMEOUT,
        GARBAGE,
        HTTP,
        JOB_EXPIRED,
        JOB_TIMEOUT,
        REPLY_TOO_LARGE,
        BAD_REPLY,
        REDIRECT,
        UNEXPECTED,
        UNKNOWN,
    }
)
OTHER = "other"


def metric_code(code: str) -> str:
    """The label a metric may show for `code`: itself when known, else `other`."""
    return code if code in KNOWN_CODES else OTHER


@dataclass(frozen=True)
class ErrorCode:
    """ZStack's ErrorCode JSON (code, description, details, nested cause); only `code` is stable."""

    code: str
    description: str = ""
    details: str = ""
    cause: ErrorCode | None = None

    @classmethod
    def from_json(cls, data: Any) -> ErrorCode:
        """Parse leniently: ZStack omits null fields and adds ones we do not model."""
        if not isinstance(data, dict):
            return cls(code=GARBAGE, description="error body is not a JSON object", details=str(data)[:200])
        # Recursion is bounded: replies nested deeper than jsonguard.MAX_DEPTH are refused before parsing.
        cause_data = data.get("cause")
        causes = data.get("causes")
        if cause_data is None and isinstance(causes, list) and causes:
            cause_data = causes[0]
        code = _text(data.get("code"))[:CODE_MAX]
        return cls(
            code=code if _CODE.match(code) else UNKNOWN,
            description=_text(data.get("description")),
            details=_text(data.get("details")),
            cause=cls.from_json(cause_data) if isinstance(cause_data, dict) else None,
        )

    def redacted(self, redact: Callable[[str], str]) -> ErrorCode:
        """The same error with every text passed through `redact` and cut to its limit, cause chain included.

        ZStack's details are free text a server may fill with request values; the client knows which
        values are secret (session ids, key secrets), this class does not.
        """
        return replace(
            self,
            description=redact(self.description)[:DESCRIPTION_MAX],
            details=redact(self.details)[:DETAILS_MAX],
            cause=self.cause.redacted(redact) if self.cause is not None else None,
        )

    @property
    def root(self) -> ErrorCode:
        node = self
        while node.cause is not None:
            node = node.cause
        return node


def _text(value: Any) -> str:
    """A server-given text, cut to _PARSE_MAX characters; a container (a hostile list) is not expanded."""
    if not value:
        return ""
    if isinstance(value, str | int | float):
        return str(value)[:_PARSE_MAX]
    return type(value).__name__


class NotSent(Exception):
    """A submission its caller withdrew at the last moment (`may_send` said why): nothing reached ZStack."""

    def __init__(self, why: str) -> None:
        self.why = why
        super().__init__(why)


MaySend = Callable[[], "str | None"]  # asked right before a submit leaves: None to send, else why not


class ZStackError(Exception):
    """A failed ZStack call: the ErrorCode (real or client-side), the HTTP status, and what was called."""

    def __init__(
        self,
        error: ErrorCode,
        *,
        http_status: int | None = None,
        operation: str = "",
    ) -> None:
        self.error = error
        self.http_status = http_status
        self.operation = operation
        super().__init__(self._render())

    @classmethod
    def client(
        cls,
        code: str,
        description: str,
        details: str = "",
        *,
        http_status: int | None = None,
        operation: str = "",
    ) -> ZStackError:
        return cls(
            ErrorCode(code=code, description=description, details=details),
            http_status=http_status,
            operation=operation,
        )

    @property
    def code(self) -> str:
        return self.error.code

    @property
    def description(self) -> str:
        return self.error.description

    @property
    def details(self) -> str:
        return self.error.details

    @property
    def root_cause_code(self) -> str:
        return self.error.root.code

    @property
    def retryable(self) -> bool:
        """Transient failures worth retrying with backoff; everything else is reported, not hammered."""
        return self.code in RETRYABLE_CODES or self.root_cause_code in RETRYABLE_CODES

    @property
    def session_expired(self) -> bool:
        return self.code == ID_INVALID_SESSION

    @property
    def not_found(self) -> bool:
        return self.code == SYS_RESOURCE_NOT_FOUND

    def to_status(self) -> dict[str, str]:
        """The shape written to `status.vms[].error`: bounded, and never a secret (the client redacts)."""
        out = {
            "code": self.code,
            "description": self.description[:DESCRIPTION_MAX],
            "details": self.details[:DETAILS_MAX],
            "rootCauseCode": self.root_cause_code,
        }
        return {k: v for k, v in out.items() if v}

    def _render(self) -> str:
        parts = [self.code]
        if self.operation:
            parts.append(f"in {self.operation}")
        if self.http_status is not None:
            parts.append(f"(HTTP {self.http_status})")
        text = " ".join(parts)
        if self.description:
            text += f": {self.description}"
        if self.details:
            text += f" ({self.details})"
        if self.root_cause_code != self.code:
            text += f" [root cause {self.root_cause_code}]"
        return text
