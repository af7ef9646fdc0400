"""What one end-to-end test works with: the shared processes, its own namespace and its own VMs."""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from .credentials import RunCredentials
from .objects import Obj, account_secret, connection
from .operator import OperatorProcess
from .simulator import SimulatorProcess, SimVm, SimWrite
from .tenant import KubectlLike, Tenant
from .waiting import wait_for

SECRET_NAME = "zstack-credentials"
CONNECTION_NAME = "default"


def module_simulator(log_dir: Path, credentials: RunCredentials, *, vms: int) -> SimulatorProcess:
    """The simulator of one test module: ``vms`` seeded VMs from a random seed, the run's credentials."""
    return SimulatorProcess(
        log_path=log_dir / "simulator.log",
        vms=vms,
        seed=secrets.randbelow(1_000_000),
        accounts=credentials.simulator_accounts,
        access_keys=credentials.simulator_access_keys,
    )


@dataclass
class VmPool:
    """Hands out simulator VMs that no earlier test of the module used, so their writes are ours alone."""

    vms: list[SimVm]
    _taken: set[str] = field(default_factory=set)

    def take(
        self, count: int, *, track: str | None = None, where: Callable[[SimVm], bool] = bool
    ) -> list[str]:
        """``count`` unused VM UUIDs, optionally only VMs whose seeded track is ``track``."""
        chosen = [
            vm.uuid
            for vm in self.vms
            if vm.uuid not in self._taken and (track is None or vm.track == track) and where(vm)
        ][:count]
        if len(chosen) < count:
            raise RuntimeError(f"the simulator has fewer than {count} unused VMs with track={track}")
        self._taken.update(chosen)
        return chosen

    def by_uuid(self, uuid: str) -> SimVm:
        return next(vm for vm in self.vms if vm.uuid == uuid)

    def unknown_uuid(self) -> str:
        """A well-formed VM UUID the simulator does not know."""
        known = {vm.uuid for vm in self.vms}
        while (candidate := secrets.token_hex(16)) in known:
            pass
        return candidate


@dataclass
class E2E:
    simulator: SimulatorProcess
    operator: OperatorProcess
    credentials: RunCredentials
    vms: VmPool
    tenant: Tenant

    @property
    def kubectl(self) -> KubectlLike:
        return self.tenant.kubectl

    @property
    def namespace(self) -> str:
        return self.tenant.namespace

    def drift_and_wait_for_correction(self, uuid: str, desired: str, *, timeout: float) -> list[SimWrite]:
        """Change ``uuid``'s track behind the operator's back, wait until it is ``desired`` again and return
        the writes the simulator recorded for it since the change."""
        injected = time.time()
        self.simulator.admin.set_track(uuid, "host" if desired == "guest" else "guest")
        wait_for(
            lambda: self.simulator.admin.tracks([uuid]),
            lambda tracks: tracks == {uuid: desired},
            timeout=timeout,
            interval=0.25,
            what=f"the drifted VM {uuid} to be put back on track {desired}",
        )
        return [w for w in self.simulator.admin.stats().writes_for([uuid]) if w.at >= injected]

    def account_secret(self) -> Obj:
        return account_secret(
            SECRET_NAME, self.credentials.account, self.credentials.password, allow=self.simulator.endpoint
        )

    def apply_until_ready(self, *objs: Obj) -> None:
        """Apply `objs` (policies) and wait until every policy of the namespace is Ready."""
        self.tenant.apply(*objs)
        self.kubectl(
            "wait", "vmclockpolicy", "--all", "--for=condition=Ready", f"--timeout={READY_TIMEOUT:.0f}s",
            namespace=self.namespace,
        )  # fmt: skip

    def api_requests(self) -> Counter[str]:
        """The requests the kube-apiserver served so far, as "VERB resource[/subresource]", codes summed:
        what the operator sent, counted by the API server itself."""
        counts: Counter[str] = Counter()
        for family in text_string_to_metric_families(self.kubectl("get", "--raw", "/metrics").stdout):
            for sample in family.samples:
                if sample.name == "apiserver_request_total":
                    labels = sample.labels
                    what = "/".join(filter(None, (labels.get("resource"), labels.get("subresource"))))
                    counts[f"{labels['verb']} {what}"] += int(sample.value)
        return counts

    def connect(self, *, resync_seconds: int | None = None, with_secret: bool = True) -> None:
        """The usual tenant set-up: Secret ``zstack-credentials`` and ZStackConnection ``default``."""
        objs = [self.account_secret()] if with_secret else []
        endpoint = self.simulator.endpoint
        objs.append(connection(CONNECTION_NAME, endpoint, SECRET_NAME, resync_seconds=resync_seconds))
        self.tenant.apply(*objs)


READY_TIMEOUT = 60.0
"""Generous bound for one reconcile on a loaded 2-core machine (a healthy one takes a few seconds)."""


SHORT_RESYNC = 10
"""The smallest ``resyncIntervalSeconds`` the API allows (docs/api.md), used where a test waits for drift."""

DRIFT_SLACK = 15.0
"""Time allowed on top of a resync interval for the round-trip that detects and handles drift."""
