"""Why a connection is not usable, as the `Ready` reasons of docs/api.md.

Messages name the object and the key that is wrong, never a value: they end up in status, Events and logs.
"""

from __future__ import annotations

CONNECTED = "Connected"
SECRET_NOT_FOUND = "SecretNotFound"
INVALID_SECRET = "InvalidSecret"
AUTH_FAILED = "AuthFailed"
UNREACHABLE = "Unreachable"
UNSUPPORTED = "Unsupported"
NOT_READY = "NotReady"
ENDPOINT_NOT_ALLOWED = "EndpointNotAllowed"  # design.md §6.1: the Secret or the operator forbids it
INSECURE_ENDPOINT = "InsecureEndpoint"  # http:// or insecureSkipVerify without --allow-insecure-endpoints
NAMESPACE_NOT_ENABLED = "NamespaceNotEnabled"  # design.md §6.5: no RoleBinding lets the operator read here
NOT_FOUND = "NotFound"  # the ZStackConnection itself does not exist (only ever seen by policies)
FORBIDDEN = frozenset({ENDPOINT_NOT_ALLOWED, INSECURE_ENDPOINT})  # reasons no fallback may get around


class ConnectionProblem(Exception):
    """`refused`: the endpoint rules forbid sending (no restore may fall back past it). It is kept apart
    from `reason` because a missing Secret must read exactly like one that does not allow the endpoint
    (trust.py) while, unlike a refusal, still letting a restore use the last client that worked."""

    def __init__(self, reason: str, message: str, *, refused: bool | None = None) -> None:
        self.reason = reason
        self.refused = reason in FORBIDDEN if refused is None else refused
        super().__init__(message)
