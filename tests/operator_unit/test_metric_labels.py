"""Metric label values an endpoint can choose stay within a closed set (design §6.6)."""

from __future__ import annotations

import secrets

from prometheus_client import generate_latest

from vmclock.kopfapp.metrics import Metrics
from vmclock.zstack.errors import KNOWN_CODES, OTHER, ErrorCode

HOSTILE_CODES = 20_000


def series(metrics: Metrics, name: str) -> list[str]:
    text = generate_latest(metrics.registry).decode()
    return [line for line in text.splitlines() if line.startswith(name + "{")]


def count_write(metrics: Metrics, purpose: str, result: str) -> None:
    """One SetVmClockTrack outcome, the way the controller reports it."""
    metrics.track_written(purpose, result)


def hostile_code() -> str:
    """A fresh code as the client parses it from an endpoint's error body: ZStack-shaped, so it is kept."""
    code = ErrorCode.from_json({"code": "SYS." + secrets.token_hex(16).upper()}).code
    assert code.startswith("SYS.")
    return code


def test_20000_endpoint_chosen_codes_make_one_other_series() -> None:
    metrics = Metrics()
    for _ in range(HOSTILE_CODES):
        metrics.on_call("QueryVmInstance", hostile_code(), 0.01)
        count_write(metrics, "apply", hostile_code())
    requests = series(metrics, "vmclock_zstack_requests_total")
    writes = series(metrics, "vmclock_track_writes_total")
    assert requests == [
        f'vmclock_zstack_requests_total{{code="{OTHER}",operation="QueryVmInstance"}} 20000.0'
    ]
    assert writes == [f'vmclock_track_writes_total{{purpose="apply",result="{OTHER}"}} 20000.0']


def test_known_codes_and_success_keep_their_own_label() -> None:
    metrics = Metrics()
    for code in ("OK", "SYS.1003", "VM.1010", "CLIENT.REPLY_TOO_LARGE", "CLIENT.UNEXPECTED"):
        metrics.on_call("SetVmClockTrack", code, 0.01)
    count_write(metrics, "drift", "ok")
    count_write(metrics, "drift", "ID.1002")
    labels = {
        line.split('code="')[1].split('"')[0] for line in series(metrics, "vmclock_zstack_requests_total")
    }
    assert labels == {"OK", "SYS.1003", "VM.1010", "CLIENT.REPLY_TOO_LARGE", "CLIENT.UNEXPECTED"}
    assert labels - {"OK"} <= KNOWN_CODES
    results = {
        line.split('result="')[1].split('"')[0] for line in series(metrics, "vmclock_track_writes_total")
    }
    assert results == {"ok", "ID.1002"}
