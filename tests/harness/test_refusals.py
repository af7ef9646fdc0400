"""What the ServiceAccount e2e tests count as a refused request in the operator's log."""

from __future__ import annotations

import pytest

from deploy.serviceaccount import refusals

REFUSED = [
    "Kubernetes API 403 (Forbidden) for ConfigMap",
    "namespace t has not enabled vmclock: ... (403 from the Kubernetes API)",
    "request failed with status=403",
    "got HTTP 403 from the API server",
    "Not enough permissions to watch for resources",
]
NOT_REFUSED = [
    "VmClockPolicy t/fleet generation 1: 1000 writes, {'total': 1000, 'inSync': 1000, 'pendingRestart': 403}",
    '"timestamp": "2026-12-07T22:31:33.403002+00:00"',
    "listening on http://127.0.0.1:40312/metrics",
    "Request attempt #1/9 failed; will retry: POST .../namespaces/t/events: events is forbidden: unable to"
    " create new content in namespace t because it is being terminated, status=403",
]


@pytest.mark.parametrize("line", REFUSED)
def test_a_refusal_is_counted(line: str) -> None:
    assert refusals(line, enabled=["t"]) == [line]


@pytest.mark.parametrize("line", NOT_REFUSED)
def test_a_number_403_is_not_a_refusal(line: str) -> None:
    assert refusals(line, enabled=["t"]) == []
