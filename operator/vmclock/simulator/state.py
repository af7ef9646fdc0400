"""The simulated management node's database: VMs, their clock tracks and sessions.

Tests reach in here to change things behind the operator's back (drift, VM state changes), which is why
these methods are public and validate their input like the real APIs would.
"""

from __future__ import annotations

import random
import time

from vmclock.simulator.config import SimulatorConfig
from vmclock.simulator.inventory import Vm, generate_fleet, random_uuid
from vmclock.simulator.sessions import SessionStore
from vmclock.simulator.tracks import ResourceConfigTracks, SystemTagTracks, check_track

VM_STATES = ("Running", "Stopped", "Paused", "Starting", "Stopping", "Unknown", "Destroyed")


class SimState:
    def __init__(self, config: SimulatorConfig) -> None:
        self.features = config.features
        self.vms: dict[str, Vm] = {vm.uuid: vm for vm in generate_fleet(config.seed, config.vms)}
        self.sessions = SessionStore(config.accounts, config.session_timeout)
        self.resource_configs = ResourceConfigTracks()
        self.system_tags = SystemTagTracks()
        row_uuids = random.Random(f"tracks-{config.seed}")
        for vm in self.vms.values():
            self._seed_track(vm, random_uuid(row_uuids))

    def _seed_track(self, vm: Vm, row_uuid: str) -> None:
        if vm.initial_track == "inherit":
            return
        if self.features.track_in_resource_config:
            self.resource_configs.seed(vm.uuid, vm.initial_track, row_uuid)
        elif vm.initial_track == "guest":
            self.system_tags.seed(vm.uuid, row_uuid)

    @property
    def tracks(self) -> ResourceConfigTracks | SystemTagTracks:
        """The storage this version uses; the other one stays empty."""
        return self.resource_configs if self.features.track_in_resource_config else self.system_tags

    def vm_uuids(self) -> list[str]:
        return list(self.vms)

    def vm(self, uuid: str) -> Vm:
        """KeyError names the uuid when the VM does not exist."""
        return self.vms[uuid]

    def track_of(self, uuid: str) -> str:
        """Effective track: the per-VM value, else the global default (or the absence of the tag)."""
        self.vm(uuid)
        return self.tracks.effective(uuid)

    def set_track_behind(self, uuid: str, track: str) -> None:
        """Drift, written the way another ZStack client (UpdateResourceConfig / SetVmClockTrack) would."""
        self.vm(uuid)
        self.tracks.set(uuid, check_track(track))

    def set_global_track(self, track: str) -> None:
        if not self.features.track_in_resource_config:
            raise ValueError(f"ZStack {self.features.version} has no global vm.clock.track (needs >= 4.3.12)")
        self.resource_configs.global_value = check_track(track)

    def set_vm_state(self, uuid: str, state: str) -> None:
        if state not in VM_STATES:
            raise ValueError(f"state must be one of {VM_STATES}, not {state!r}")
        self.vm(uuid).change_state(state, time.time())
