"""The ZStack simulator as a separate process, and a client for its ``/_sim`` admin routes.

End-to-end tests and the sandbox run the simulator exactly as a user would (``python -m vmclock.simulator``)
and drive it over HTTP, so the operator under test talks to a real socket owned by another process.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from .processes import ManagedProcess, OutputPump, spawn

_LISTENING = re.compile(r"vmclock-simulator listening on (http://\S+)")
START_TIMEOUT = 30.0


class SimulatorError(RuntimeError):
    """The simulator did not start, or its admin API answered with an error."""


@dataclass(frozen=True)
class SimVm:
    """One row of ``GET /_sim/vms``."""

    uuid: str
    name: str
    platform: str
    state: str
    track: str
    zone_uuid: str = ""
    cluster_uuid: str = ""
    user_tags: tuple[str, ...] = ()
    domain_track: str = ""  # the track the running domain was built with (the stored one applies at boot)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> SimVm:
        return cls(
            uuid=raw["uuid"],
            name=raw["name"],
            platform=raw["platform"],
            state=raw["state"],
            track=raw["track"],
            zone_uuid=raw["zoneUuid"],
            cluster_uuid=raw["clusterUuid"],
            user_tags=tuple(raw["userTags"]),
            domain_track=raw.get("domainTrack") or "",
        )


@dataclass(frozen=True)
class SimWrite:
    """One completed SetVmClockTrack, as the simulator recorded it."""

    at: float
    uuid: str
    track: str


@dataclass(frozen=True)
class SimReboot:
    """One RebootVmInstance that reached the hypervisor: from Rebooting to its end (``ok``: Running again)."""

    uuid: str
    start: float
    end: float
    ok: bool


@dataclass(frozen=True)
class SimStats:
    """``GET /_sim/stats``: API calls by name, completed writes in order, peak concurrency, reboots."""

    calls: dict[str, int]
    writes: list[SimWrite]
    max_in_flight: int
    reboots: list[SimReboot] = field(default_factory=list)
    max_concurrent_reboots: int = 0
    rebooting: list[str] = field(default_factory=list)  # VMs in a reboot right now

    def reboots_of(self, uuids: Iterable[str]) -> list[SimReboot]:
        wanted = set(uuids)
        return [reboot for reboot in self.reboots if reboot.uuid in wanted]

    def count(self, api: str) -> int:
        return self.calls.get(api, 0)

    def writes_for(self, uuids: Iterable[str]) -> list[SimWrite]:
        wanted = set(uuids)
        return [write for write in self.writes if write.uuid in wanted]


class SimulatorAdmin:
    """Synchronous client for the simulator's admin routes (JSON over loopback HTTP, no auth)."""

    def __init__(self, endpoint: str, timeout: float = 10.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.endpoint}/_sim{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            raw = response.read()
        return json.loads(raw) if raw.strip() else None

    def stats(self) -> SimStats:
        raw = self._call("GET", "/stats")
        return SimStats(
            calls=dict(raw["calls"]),
            writes=[SimWrite(at=w["at"], uuid=w["uuid"], track=w["track"]) for w in raw["writes"]],
            max_in_flight=raw["maxInFlight"],
            reboots=[SimReboot(r["uuid"], r["start"], r["end"], r["ok"]) for r in raw["reboots"]],
            max_concurrent_reboots=raw["maxConcurrentReboots"],
            rebooting=list(raw["rebooting"]),
        )

    def reset_stats(self) -> None:
        self._call("POST", "/stats/reset")

    def vms(self) -> list[SimVm]:
        return [SimVm.from_json(v) for v in self._call("GET", "/vms")]

    def tracks(self, uuids: Iterable[str] | None = None) -> dict[str, str]:
        """Effective track per VM (all VMs, or only ``uuids``)."""
        wanted = None if uuids is None else set(uuids)
        return {vm.uuid: vm.track for vm in self.vms() if wanted is None or vm.uuid in wanted}

    def set_track(self, uuid: str, track: str) -> None:
        """Change a VM's track behind the operator's back (drift)."""
        self._call("POST", f"/vms/{uuid}/track", {"track": track})

    def set_state(self, uuid: str, state: str) -> None:
        self._call("POST", f"/vms/{uuid}/state", {"state": state})

    def set_platform(self, uuid: str, platform: str) -> None:
        """UpdateVmInstance(platform=...): the VM may start or stop matching a platform selector."""
        self._call("POST", f"/vms/{uuid}/platform", {"platform": platform})

    def add_user_tag(self, uuid: str, tag: str) -> None:
        self._call("POST", f"/vms/{uuid}/user-tags", {"tag": tag})

    def remove_user_tag(self, uuid: str, tag: str) -> None:
        self._call("DELETE", f"/vms/{uuid}/user-tags", {"tag": tag})

    def add_vm(
        self,
        name: str,
        *,
        platform: str = "Windows",
        state: str = "Running",
        zone_uuid: str | None = None,
        cluster_uuid: str | None = None,
        user_tags: Sequence[str] = (),
        track: str = "inherit",
    ) -> SimVm:
        """Create a VM "next week" (after the operator started); the simulator picks its uuid.

        Without ``zone_uuid``/``cluster_uuid`` it lands in an existing cluster; new uuids create the zone or
        cluster. ``track`` is ``inherit`` (no per-VM value) or an explicit ``guest``/``host``."""
        body: dict[str, Any] = {
            "name": name,
            "platform": platform,
            "state": state,
            "userTags": list(user_tags),
            "track": track,
        }
        if zone_uuid is not None:
            body["zoneUuid"] = zone_uuid
        if cluster_uuid is not None:
            body["clusterUuid"] = cluster_uuid
        return SimVm.from_json(self._call("POST", "/vms", body))

    def delete_vm(self, uuid: str) -> None:
        """Destroy and expunge: gone from queries, and its resource configs and tags with it."""
        self._call("DELETE", f"/vms/{uuid}")

    def set_global_track(self, track: str) -> None:
        self._call("POST", "/global-config", {"track": track})

    def set_faults(
        self,
        *,
        error_rates: dict[str, float] | None = None,
        code: str = "SYS.1001",
        latency: float = 0.0,
        drop_rate: float = 0.0,
        html502_rate: float = 0.0,
        lost_accept_rate: float = 0.0,
        ready: bool = True,
        reboot_failures: dict[str, str] | None = None,
    ) -> None:
        """Replace every fault setting at once (unset ones return to "no fault"). ``reboot_failures``: VMs
        that do not come back from a reboot, and the state each is left in (Stopped or Unknown)."""
        rates = {api: {"rate": rate, "code": code} for api, rate in (error_rates or {}).items()}
        self._call(
            "PUT",
            "/faults",
            {
                "latency": latency,
                "errorRates": rates,
                "dropRate": drop_rate,
                "html502Rate": html502_rate,
                "lostAcceptRate": lost_accept_rate,
                "ready": ready,
                "rebootFailures": reboot_failures or {},
            },
        )

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def expire_sessions(self) -> None:
        self._call("POST", "/sessions/expire")


@dataclass(kw_only=True)
class SimulatorProcess(ManagedProcess):
    """``python -m vmclock.simulator`` in its own process group; use as a context manager or start/stop.

    ``accounts`` and ``access_keys`` are ``(name, secret)`` pairs; leaving both empty keeps the simulator's
    default ``admin``/``password`` account.
    """

    vms: int = 50
    seed: int = 0
    port: int = 0
    zstack_version: str | None = None
    job_latency: float | None = None
    reboot_seconds: float | None = None
    session_timeout: float | None = None
    accounts: Sequence[tuple[str, str]] = ()
    access_keys: Sequence[tuple[str, str]] = ()
    python: str = sys.executable
    endpoint: str = field(init=False, default="")

    def argv(self) -> list[str]:
        argv = [self.python, "-m", "vmclock.simulator", "--host", "127.0.0.1", "--port", str(self.port)]
        argv += ["--vms", str(self.vms), "--seed", str(self.seed)]
        optional = {
            "--zstack-version": self.zstack_version,
            "--job-latency": self.job_latency,
            "--reboot-seconds": self.reboot_seconds,
            "--session-timeout": self.session_timeout,
        }
        for flag, value in optional.items():
            if value is not None:
                argv += [flag, str(value)]
        for name, secret in self.accounts:
            argv += ["--account", f"{name}:{secret}"]
        for key_id, secret in self.access_keys:
            argv += ["--access-key", f"{key_id}:{secret}"]
        return argv

    @property
    def admin(self) -> SimulatorAdmin:
        if not self.endpoint:
            raise SimulatorError("the simulator is not running")
        return SimulatorAdmin(self.endpoint)

    def start(self) -> SimulatorProcess:
        log = self._open_log()
        self._proc = spawn(self.argv(), log=log, stdout_pipe=True)
        try:
            self.endpoint = self._read_endpoint(self._proc, log)
        except BaseException:
            self.stop()
            raise
        return self

    def _read_endpoint(self, proc: subprocess.Popen[bytes], log: IO[bytes]) -> str:
        """Wait for the one "listening on" line; stdout keeps being copied into the log file afterwards."""
        assert proc.stdout is not None
        line = OutputPump(proc.stdout, sink=log).expect(
            lambda text: bool(_LISTENING.search(text)), START_TIMEOUT
        )
        if line is not None:
            match = _LISTENING.search(line)
            assert match is not None
            return match.group(1)
        proc.poll()
        raise SimulatorError(
            f"simulator did not report its port within {START_TIMEOUT:.0f}s (exit code {proc.returncode}); "
            f"log: {self.log_path}\n{self.log_tail()}"
        )
