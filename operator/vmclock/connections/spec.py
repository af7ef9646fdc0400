"""Typed view of a ZStackConnection spec (defaults as in docs/api.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_CONTEXT_PATH = "/zstack"
DEFAULT_MAX_CONCURRENT = 16
DEFAULT_REQUEST_TIMEOUT = 30
DEFAULT_RESYNC_SECONDS = 300
DEFAULT_CA_KEY = "ca.crt"


@dataclass(frozen=True)
class CaBundleRef:
    kind: str  # Secret | ConfigMap
    name: str
    key: str = DEFAULT_CA_KEY


@dataclass(frozen=True)
class ConnectionSpec:
    endpoint: str
    secret_name: str
    context_path: str = DEFAULT_CONTEXT_PATH
    ca_bundle: CaBundleRef | None = None
    insecure_skip_verify: bool = False
    max_concurrent_requests: int = DEFAULT_MAX_CONCURRENT
    request_timeout_seconds: int = DEFAULT_REQUEST_TIMEOUT
    resync_interval_seconds: int = DEFAULT_RESYNC_SECONDS


def parse_connection_spec(spec: Mapping[str, Any]) -> ConnectionSpec:
    """Lenient on purpose: the CRD schema validates; anything unusable surfaces when the client is built."""
    tls = spec.get("tls") or {}
    ca = tls.get("caBundleRef")
    return ConnectionSpec(
        endpoint=str(spec.get("endpoint", "")),
        secret_name=str((spec.get("credentialsSecretRef") or {}).get("name", "")),
        context_path=str(spec.get("contextPath") or DEFAULT_CONTEXT_PATH),
        ca_bundle=CaBundleRef(
            str(ca.get("kind", "Secret")), str(ca.get("name", "")), str(ca.get("key") or DEFAULT_CA_KEY)
        )
        if ca
        else None,
        insecure_skip_verify=tls.get("insecureSkipVerify") is True,
        max_concurrent_requests=int(spec.get("maxConcurrentRequests") or DEFAULT_MAX_CONCURRENT),
        request_timeout_seconds=int(spec.get("requestTimeoutSeconds") or DEFAULT_REQUEST_TIMEOUT),
        resync_interval_seconds=int(spec.get("resyncIntervalSeconds") or DEFAULT_RESYNC_SECONDS),
    )


def resync_interval(policy_override: int | None, connection: ConnectionSpec | None) -> int:
    """How often a policy is drift-checked: its own resyncIntervalSeconds, else its connection's, else the
    default (the connection may be missing). The one place this rule lives, for resyncs and retries alike."""
    if policy_override is not None:
        return policy_override
    return connection.resync_interval_seconds if connection is not None else DEFAULT_RESYNC_SECONDS
