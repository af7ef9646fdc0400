"""Client settings and the endpoint they apply to.

Kept apart from the client so the transport, the job poller and the query layer can read the same
validated values without importing the facade.
"""

from __future__ import annotations

import re
import ssl as ssl_module
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from vmclock.backoff import Backoff
from vmclock.zstack.budget import ReplyBudget
from vmclock.zstack.hostnames import resolver_host

_CONTEXT_PATH_RE = re.compile(r"^(/[A-Za-z0-9._~-]+)*/?$")

# Jetty (ZStack's servlet container) and aiohttp both refuse a request line longer than 8 KiB; counting the
# trailing CRLF keeps us under aiohttp's 8190-character limit for the line itself.
MAX_REQUEST_LINE = 8192
HTTP_VERSION = "HTTP/1.1"


@dataclass(frozen=True)
class ClientOptions:
    """How one client talks to one management node (defaults follow docs/api.md's ZStackConnection)."""

    context_path: str = "/zstack"
    max_concurrent_requests: int = 16
    request_timeout: float = 30.0
    connect_timeout: float = 10.0
    ssl: ssl_module.SSLContext | Literal[False] | None = None  # None: verify with the system CAs
    retry_attempts: int = 5
    retry_base_delay: float = 0.2
    retry_max_delay: float = 5.0
    poll_first_delay: float = 0.02
    poll_max_delay: float = 2.0
    page_size: int = 1000  # ZStack's own default `limit`
    # Bounds on what one management node may send back (design §6.2). A page of 1000 full VM inventories
    # is about 2.7 MB and one of 10,000 fields=-projected rows about 4.5 MB (more with long names and
    # ZStack's per-row schema entries): 8 MiB leaves room for both.
    max_reply_bytes: int = 8 * 1024 * 1024
    max_listing_rows: int = 20_000  # rows one open listing may return (batched uuid lists are exact)
    max_job_timeout: float = 1800.0  # the server's apiTimeout is clamped to this (ZStack's default, 30 min)
    # Memory for replies in flight, shared with other clients (design §6.6); None: the process's budget.
    reply_budget: ReplyBudget | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        try:
            context_path(self.context_path)
        except ValueError as error:
            raise ValueError(f"context_path: {error}") from None
        positive = {
            "max_concurrent_requests": self.max_concurrent_requests,
            "request_timeout": self.request_timeout,
            "connect_timeout": self.connect_timeout,
            "retry_attempts": self.retry_attempts,
            "poll_first_delay": self.poll_first_delay,
            "page_size": self.page_size,
            "max_reply_bytes": self.max_reply_bytes,
            "max_listing_rows": self.max_listing_rows,
            "max_job_timeout": self.max_job_timeout,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if not 0 <= self.retry_base_delay <= self.retry_max_delay:
            raise ValueError("retry delays must satisfy 0 <= retry_base_delay <= retry_max_delay")
        if self.poll_max_delay < self.poll_first_delay:
            raise ValueError("poll_max_delay must not be smaller than poll_first_delay")

    def retry_backoff(self) -> Backoff:
        """The waits between retries of a failed call, and between failed polls of a job."""
        return Backoff(base=self.retry_base_delay, cap=self.retry_max_delay)

    @property
    def aiohttp_ssl(self) -> ssl_module.SSLContext | bool:
        """aiohttp spells "verify with system CAs" as True."""
        return True if self.ssl is None else self.ssl


def context_path(path: str) -> str:
    """`path` without its trailing `/`, checked to be a plain servlet context path: the path an allow-list
    entry names must be the one requests go to, so no `.`/`..` segment may make two spellings of one."""
    if not _CONTEXT_PATH_RE.match(path) or {".", ".."} & set(path.split("/")):
        raise ValueError(f"context path {path!r} is not a plain path like /zstack")
    return path.rstrip("/")


@dataclass(frozen=True)
class Endpoint:
    """Where requests go: scheme://host:port plus the servlet context path in front of /v1."""

    origin: str
    context_path: str

    @classmethod
    def parse(cls, url: str, default_context_path: str) -> Endpoint:
        """Accept `https://mn:8080` or `https://mn:8080/ctx`; a path replaces the context path. The host
        becomes the ASCII form the resolver looks up (hostnames.py), the one the endpoint rules checked."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("endpoint must be an http(s) URL with a host, e.g. https://zstack.example:8080")
        if parts.username is not None or parts.password is not None:
            # Never echo the URL here: its user-info part is exactly the secret we refuse to carry.
            raise ValueError("endpoint must not carry credentials; use a credentials Secret")
        if parts.query or parts.fragment:
            raise ValueError("endpoint must not have a query or fragment")
        try:
            host = resolver_host(parts.hostname)
            port = parts.port
            path = context_path(parts.path if parts.path not in ("", "/") else default_context_path)
        except ValueError as error:
            raise ValueError(f"endpoint {error}") from None
        netloc = f"[{host}]" if ":" in host else host
        if port is not None:
            netloc += f":{port}"
        return cls(origin=f"{parts.scheme}://{netloc}", context_path=path)

    def target(self, api_path: str, query: str = "") -> str:
        """The request target (path and query) for an API path such as `/v1/vm-instances`."""
        path = f"{self.context_path}{api_path}"
        return f"{path}?{query}" if query else path

    def url(self, api_path: str, query: str = "") -> str:
        return f"{self.origin}{self.target(api_path, query)}"

    def request_line_length(self, method: str, api_path: str, query: str = "") -> int:
        """Bytes of `METHOD target HTTP/1.1\\r\\n`, the line servers cap at 8 KiB (targets are ASCII)."""
        return len(f"{method} {self.target(api_path, query)} {HTTP_VERSION}\r\n")
