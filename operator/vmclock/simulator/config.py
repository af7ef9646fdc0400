"""What a simulated management node is: its version, its data and the knobs tests turn.

Every version-dependent behaviour of the simulator is decided here, in one place, from the release
branches listed in zstack-api.md §5, so a test can pick a ZStack version and get that branch's protocol.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DEFAULT_ADVERTISED_URL = "http://mn.internal:8080"
"""ZStack builds a job `location` from the MN's own base URL, which clients often cannot reach; answering
with a host other than the one the client dialled by default forces clients to rewrite it, as the SDKs do."""


_RELEASE = re.compile(r"(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True)
class Features:
    """The protocol differences between ZStack release branches that matter for clock track.

    Versions are parsed here rather than with the client's ZStackVersion: the simulator is the oracle the
    client is tested against, so it must not share the client's code.
    """

    version: str
    release: tuple[int, int, int]

    @classmethod
    def of(cls, text: str) -> Features:
        match = _RELEASE.search(text)
        if match is None:
            raise ValueError(f"unrecognised ZStack version {text!r}; expected x.y.z")
        major, minor, patch = (int(group) for group in match.groups())
        return cls(text, (major, minor, patch))

    @property
    def has_set_vm_clock_track(self) -> bool:
        """APISetVmClockTrackMsg exists from branch 4.1.0 on (absent on 4.0.x)."""
        return self.release >= (4, 1, 0)

    @property
    def has_qga_clock_fields(self) -> bool:
        """`syncAfterVMResume` / `intervalInSeconds` exist on branches >= 4.4.24 (absent on 4.4.18)."""
        return self.release >= (4, 4, 24)

    @property
    def track_in_resource_config(self) -> bool:
        """>= 4.3.12 keeps the track in resource config `vm.clock.track`; older releases in a system tag."""
        return self.release >= (4, 3, 12)

    @property
    def rejects_duplicate_job_uuid(self) -> bool:
        """The "Duplicate job uuid" check on X-Job-UUID exists on branches >= 4.6.0."""
        return self.release >= (4, 6, 0)


@dataclass(frozen=True)
class SimulatorConfig:
    """Constructor arguments of `Simulator`; defaults match a stock management node where one exists.

    `advertised_url` is the base of the `location` URL in 202 replies; `None` answers with the scheme and
    Host the request came in on, the way an MN reached directly would.
    """

    vms: int = 50
    zstack_version: str = "5.3.0"
    job_latency: float = 0.05
    seed: int = 0
    session_timeout: float = 7200.0
    accounts: dict[str, str] = field(default_factory=lambda: {"admin": "password"})
    access_keys: dict[str, str] = field(default_factory=dict)
    job_retention: float = 10800.0
    host: str = "127.0.0.1"
    port: int = 0
    advertised_url: str | None = DEFAULT_ADVERTISED_URL
    context_path: str = "/zstack"
    api_timeout: float = 1800.0
    reboot_seconds: float = 0.5
    """How long a RebootVmInstance keeps a VM in Rebooting (stop and start on the hypervisor)."""

    def __post_init__(self) -> None:
        Features.of(self.zstack_version)  # fail at construction, not at the first request
        if self.vms < 0:
            raise ValueError("vms must be >= 0")
        if self.job_latency < 0 or self.session_timeout <= 0 or self.job_retention < 0:
            raise ValueError("job_latency and job_retention must be >= 0, session_timeout > 0")
        if self.reboot_seconds < 0:
            raise ValueError("reboot_seconds must be >= 0")
        if not self.context_path.startswith("/") or self.context_path.endswith("/"):
            raise ValueError("context_path must start with '/' and not end with it, e.g. '/zstack'")

    @property
    def features(self) -> Features:
        return Features.of(self.zstack_version)
