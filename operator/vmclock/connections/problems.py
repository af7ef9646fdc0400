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


class ConnectionProblem(Exception):
    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)
