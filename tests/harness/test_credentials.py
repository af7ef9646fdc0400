"""The leak scan itself: it must find what it claims to find, and nothing the operator is allowed to print.

An AccessKey signature is computed here exactly as the client computes it (``vmclock.zstack.auth.sign`` over
``METHOD\\nDate\\npath``) and masked exactly as the client masks it, so the scan is checked against the real
shapes rather than hand-written look-alikes.
"""

from __future__ import annotations

import json
import time

from vmclock.zstack.auth import SIGNATURE_RE, http_date, sign
from vmclock.zstack.redact import MASK

from .credentials import SIGNATURE, RunCredentials


def authorization(creds: RunCredentials, method: str = "GET", path: str = "/v1/vm-instances") -> str:
    """The header value the client sends with AccessKey credentials."""
    signature = sign(creds.key_secret, method, http_date(time.time()), path)
    return f"ZStack {creds.key_id}:{signature}"


def log_line(message: str) -> str:
    return json.dumps({"severity": "error", "message": message})


def test_a_real_signature_is_found_in_a_json_log_line() -> None:
    creds = RunCredentials()
    header = authorization(creds)

    found = creds.leaks_in(log_line(f"ZStack said: denied: {header}"))

    assert found == [SIGNATURE]


def test_signatures_of_other_requests_are_found_too() -> None:
    creds = RunCredentials()
    for method, path in (("PUT", "/v1/vm-instances/abc/actions"), ("GET", "/v1/management-nodes/ready")):
        assert SIGNATURE in creds.leaks_in(f"Authorization: {authorization(creds, method, path)}")


def test_the_masked_header_is_not_a_leak() -> None:
    creds = RunCredentials()
    masked = SIGNATURE_RE.sub(MASK, authorization(creds))
    assert masked == f"ZStack {creds.key_id}:{MASK}"

    assert creds.leaks_in(log_line(f"denied: {masked}")) == []


def test_a_signature_under_another_key_id_is_not_ours() -> None:
    creds, stranger = RunCredentials(), RunCredentials()
    assert creds.leaks_in(authorization(stranger)) == []


def test_fixed_forms_are_still_found() -> None:
    creds = RunCredentials()
    assert creds.leaks_in(f"login with {creds.password} failed") == ["password"]
