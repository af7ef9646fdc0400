"""AccessKey signing and Date headers, against vectors computed outside Python (openssl)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from vmclock.zstack.auth import http_date, sign
from vmclock.zstack.credentials import AccessKeyCredentials, AccountCredentials

# printf 'PUT\nFri, 27 Nov 2026 11:46:44 UTC\n/v1/vm-instances/<uuid>/actions' \
#   | openssl dgst -sha1 -hmac 'ak-secret-value' -binary | base64
VECTOR = "fadrW/RtNV+bN04DnIzOtVnQu7M="
FRIDAY = 1795780004  # 2026-11-27T11:46:44Z


def test_signature_matches_openssl_vector() -> None:
    path = "/v1/vm-instances/0123456789abcdef0123456789abcdef/actions"
    assert sign("ak-secret-value", "PUT", "Fri, 27 Nov 2026 11:46:44 UTC", path) == VECTOR
    assert sign("ak-secret-value", "GET", "Fri, 27 Nov 2026 11:46:44 UTC", path) != VECTOR


@pytest.fixture
def timezone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(
    ("tz", "expected"),
    [("UTC", "Fri, 27 Nov 2026 11:46:44 UTC"), ("Asia/Shanghai", "Fri, 27 Nov 2026 19:46:44 CST")],
)
def test_date_header_is_local_time_in_java_format(
    tz: str, expected: str, timezone: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", tz)
    time.tzset()
    assert http_date(FRIDAY) == expected


def test_password_is_sent_as_sha512_hex_and_secrets_stay_out_of_repr() -> None:
    account = AccountCredentials("admin", "password")
    assert account.password_sha512.startswith("b109f3bb")
    assert account.password_sha512.endswith("cacbc86")
    assert "'password'" not in repr(account)
    assert "b109f3bb" not in repr(account)
    key = AccessKeyCredentials("ak-id", "ak-secret-value")
    assert "ak-secret-value" not in repr(key)
