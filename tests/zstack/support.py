"""Shared pieces of the client tests: credentials, fast options, the on_call recorder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from vmclock.zstack import AccountCredentials, ClientOptions, ZStackClient

ADMIN = AccountCredentials("admin", "password")

# Fast but otherwise production-shaped settings: tests should not wait for 5 s backoff ceilings.
FAST = ClientOptions(
    request_timeout=5.0,
    connect_timeout=2.0,
    retry_attempts=5,
    retry_base_delay=0.001,
    retry_max_delay=0.01,
    poll_first_delay=0.005,
    poll_max_delay=0.05,
)

MakeClient = Callable[..., ZStackClient]


@dataclass
class CallLog:
    """What the `on_call` hook saw: (api, code, seconds) per attempt."""

    events: list[tuple[str, str, float]] = field(default_factory=list)

    def __call__(self, api: str, code: str, seconds: float) -> None:
        self.events.append((api, code, seconds))

    def codes(self, api: str) -> list[str]:
        return [code for name, code, _ in self.events if name == api]
