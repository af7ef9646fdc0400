"""Fault injection, switchable at run time from Python or over the admin routes.

Faults model what a client meets in production: a slow or unready management node, API failures
delivered the way ZStack delivers them (sync 503, or 202 then a failed job), and what a proxy or network in
front of the MN does (a dropped connection, an HTML 502, a 202 that never arrives although the job runs).
Random draws come from a seeded generator so a benchmark run is repeatable.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from vmclock.simulator.reboots import STUCK_STATES
from vmclock.simulator.sessions import SessionStore

ALL_APIS = "*"
POLL_JOB = "PollJob"


@dataclass(frozen=True)
class ErrorRate:
    rate: float
    code: str


def _rate(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{what} must be a number between 0 and 1, not {value!r}")
    return float(value)


def _reboot_failures(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(v in STUCK_STATES for v in raw.values()):
        raise ValueError(f"rebootFailures must map VM uuids to one of {', '.join(STUCK_STATES)}")
    return {str(uuid): str(state) for uuid, state in raw.items()}


def _error_rate(api: str, rate: Any, code: Any) -> ErrorRate:
    if api == POLL_JOB:
        raise ValueError("job polls are answered by RestServer itself; use drop_rate or html502_rate")
    if not isinstance(code, str) or not code:
        raise ValueError(f"the error code of {api} must be a non-empty string such as SYS.1001")
    return ErrorRate(_rate(rate, f"the error rate of {api}"), code)


class Faults:
    """Current faults; `clear()` restores a healthy management node."""

    latency: float
    drop_rate: float
    html502_rate: float
    lost_accept_rate: float
    ready: bool
    error_rates: dict[str, ErrorRate]
    reboot_failures: dict[str, str]
    """VMs that do not come back from a reboot: the state each is left in (the reboot job fails)."""

    def __init__(self, sessions: SessionStore, seed: int = 0) -> None:
        self._sessions = sessions
        self._rng = random.Random(f"faults-{seed}")
        self.clear()

    def clear(self) -> None:
        self.latency = 0.0
        self.drop_rate = 0.0
        self.html502_rate = 0.0
        self.lost_accept_rate = 0.0
        self.ready = True
        self.error_rates = {}
        self.reboot_failures = {}

    def set_error_rate(self, api: str, rate: float, code: str = "SYS.1001") -> None:
        """Fail `rate` of the calls to `api` (an API name such as "SetVmClockTrack", or "*" for every API)
        with ErrorCode `code`, delivered as ZStack would (sync 503, or 202 then a failed job); rate 0 removes
        the fault. Job polls are not APIs (RestServer answers them itself), so they cannot fail this way."""
        fault = _error_rate(api, rate, code)
        if fault.rate == 0.0:
            self.error_rates.pop(api, None)
        else:
            self.error_rates[api] = fault

    def expire_all_sessions(self) -> None:
        self._sessions.expire_all()

    def roll(self, rate: float) -> bool:
        return rate > 0.0 and self._rng.random() < rate

    def injected_error(self, api: str) -> str | None:
        """The error code to fail this call with, if the dice say so."""
        fault = self.error_rates.get(api, self.error_rates.get(ALL_APIS))
        if fault is not None and self.roll(fault.rate):
            return fault.code
        return None

    def replace(self, data: dict[str, Any]) -> None:
        """Replace every fault with the JSON shape of `PUT /_sim/faults`; missing keys mean no fault.

        Checks everything before changing anything (ValueError/TypeError): a bad request changes nothing."""
        latency = data.get("latency", 0.0)
        if isinstance(latency, bool) or not isinstance(latency, int | float) or latency < 0:
            raise ValueError(f"latency must be a number >= 0, not {latency!r}")
        rates = data.get("errorRates", {})
        if not isinstance(rates, dict) or not all(isinstance(v, dict) for v in rates.values()):
            raise ValueError('errorRates must map API names to {"rate": r, "code": "SYS.1001"}')
        error_rates = {
            api: _error_rate(api, v.get("rate"), v.get("code", "SYS.1001")) for api, v in rates.items()
        }
        drop = _rate(data.get("dropRate", 0.0), "dropRate")
        html502 = _rate(data.get("html502Rate", 0.0), "html502Rate")
        lost_accept = _rate(data.get("lostAcceptRate", 0.0), "lostAcceptRate")
        ready = data.get("ready", True)
        if not isinstance(ready, bool):
            raise TypeError(f"ready must be a boolean, not {ready!r}")
        reboot_failures = _reboot_failures(data.get("rebootFailures", {}))
        self.latency, self.drop_rate, self.html502_rate = float(latency), drop, html502
        self.lost_accept_rate, self.ready = lost_accept, ready
        self.error_rates = {api: r for api, r in error_rates.items() if r.rate > 0.0}
        self.reboot_failures = reboot_failures

    def to_json(self) -> dict[str, Any]:
        return {
            "latency": self.latency,
            "errorRates": {api: {"rate": r.rate, "code": r.code} for api, r in self.error_rates.items()},
            "dropRate": self.drop_rate,
            "html502Rate": self.html502_rate,
            "lostAcceptRate": self.lost_accept_rate,
            "ready": self.ready,
            "rebootFailures": dict(self.reboot_failures),
        }
