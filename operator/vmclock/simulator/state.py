"""The simulated management node's database: VMs, their clock tracks, user tags and sessions.

Tests reach in here to change things behind the operator's back (drift, VM state changes, VMs created or
deleted "next week"), which is why these methods are public and validate their input like the real APIs
would.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from vmclock.simulator.config import SimulatorConfig
from vmclock.simulator.inventory import PLATFORMS, UUID, Vm, generate_fleet, new_vm, random_uuid
from vmclock.simulator.labels import label_fleet
from vmclock.simulator.sessions import SessionStore
from vmclock.simulator.tracks import (
    CLOCK_TRACK,
    CLOCK_TRACK_CONFIG,
    QGA_CONFIGS,
    ResourceConfig,
    SystemTagTracks,
    check_track,
)
from vmclock.simulator.usertags import UserTags

VM_STATES = ("Running", "Stopped", "Paused", "Starting", "Stopping", "Rebooting", "Unknown", "Destroyed")
INHERIT = "inherit"  # a VM without a per-VM track row (or tag): it follows the global value


@dataclass(frozen=True)
class NewVm:
    """What a test chooses about a VM it creates at run time; everything else is made up like a seeded VM.

    `zone_uuid`/`cluster_uuid` may name places the fleet does not have yet (they are created); `track` is
    `inherit` or an explicit per-VM value."""

    name: str
    platform: str = "Windows"
    state: str = "Running"
    zone_uuid: str | None = None
    cluster_uuid: str | None = None
    user_tags: tuple[str, ...] = ()
    track: str = INHERIT


def check_platform(platform: str) -> str:
    if platform not in PLATFORMS:
        raise ValueError(f"platform must be one of {PLATFORMS}, not {platform!r}")
    return platform


def check_tag(tag: str) -> str:
    if not tag.strip():
        raise ValueError("a user tag must be a non-empty string")
    return tag


def _check_uuid(value: str | None, what: str) -> str | None:
    if value is not None and not UUID.fullmatch(value):
        raise ValueError(f"{what} must be 32 lowercase hex characters, not {value!r}")
    return value


class SimState:
    def __init__(self, config: SimulatorConfig) -> None:
        self.features = config.features
        self._infra, fleet = generate_fleet(config.seed, config.vms)
        self.user_tags = UserTags()
        label_fleet(config.seed, self._infra, fleet, self.user_tags)
        self.vms: dict[str, Vm] = {vm.uuid: vm for vm in fleet}
        self.sessions = SessionStore(config.accounts, config.session_timeout)
        self.resource_configs = ResourceConfig(CLOCK_TRACK_CONFIG)
        self.system_tags = SystemTagTracks()
        self.configs: dict[str, ResourceConfig] = {}
        """The VM-bound resource configs this version has, by name (GetResourceConfig refuses others)."""
        if self.features.track_in_resource_config:
            self.configs[CLOCK_TRACK] = self.resource_configs
        if self.features.has_qga_clock_fields:
            self.configs.update((c.name, ResourceConfig(c)) for c in QGA_CONFIGS)
        self._new_vms = random.Random(f"added-{config.seed}")
        row_uuids = random.Random(f"tracks-{config.seed}")
        for vm in self.vms.values():
            self._seed_track(vm, random_uuid(row_uuids))
        self.domain_tracks: dict[str, str] = {uuid: self.tracks.effective(uuid) for uuid in self.vms}
        """The track each VM's domain XML was built with: the stored one only takes effect at a (re)start."""

    def _seed_track(self, vm: Vm, row_uuid: str) -> None:
        if vm.initial_track == INHERIT:
            return
        if self.features.track_in_resource_config:
            self.resource_configs.seed(vm.uuid, vm.initial_track, row_uuid)
        elif vm.initial_track == "guest":
            self.system_tags.seed(vm.uuid, row_uuid)

    @property
    def tracks(self) -> ResourceConfig | SystemTagTracks:
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
        if state == "Running" and self.vm(uuid).state != "Running":
            self.boot(uuid)
        else:
            self.vm(uuid).change_state(state, time.time())

    def boot(self, uuid: str) -> None:
        """The VM (re)starts on its host: a new domain XML, built with the track stored now."""
        self.vm(uuid).change_state("Running", time.time())
        self.domain_tracks[uuid] = self.tracks.effective(uuid)

    def set_platform(self, uuid: str, platform: str) -> None:
        """UpdateVmInstance(platform=...), e.g. a VM reinstalled with another OS."""
        self.vm(uuid).change_platform(check_platform(platform), time.time())

    def add_user_tag(self, uuid: str, tag: str) -> None:
        self.vm(uuid)
        self.user_tags.add(uuid, check_tag(tag))

    def remove_user_tag(self, uuid: str, tag: str) -> None:
        """KeyError when the VM does not exist or does not carry the tag."""
        self.vm(uuid)
        self.user_tags.remove(uuid, tag)

    def add_vm(self, spec: NewVm) -> Vm:
        """CreateVmInstance: a new VM, appended after the existing ones; ValueError for a bad spec."""
        check_platform(spec.platform)
        if spec.state not in VM_STATES:
            raise ValueError(f"state must be one of {VM_STATES}, not {spec.state!r}")
        if spec.track != INHERIT:
            check_track(spec.track)
        for tag in spec.user_tags:
            check_tag(tag)
        cluster = self._infra.cluster(
            self._new_vms,
            _check_uuid(spec.zone_uuid, "zoneUuid"),
            _check_uuid(spec.cluster_uuid, "clusterUuid"),
        )
        vm = new_vm(
            self._new_vms,
            self._infra,
            name=spec.name,
            platform=spec.platform,
            state=spec.state,
            cluster=cluster,
            now=time.time(),
        )
        self.vms[vm.uuid] = vm
        for tag in spec.user_tags:
            self.user_tags.add(vm.uuid, tag)
        if spec.track != INHERIT:
            self.tracks.set(vm.uuid, spec.track)
        self.domain_tracks[vm.uuid] = self.tracks.effective(vm.uuid)
        return vm

    def delete_vm(self, uuid: str) -> None:
        """Destroy and expunge: the VM, its resource config rows and its tags are gone (KeyError if
        unknown)."""
        del self.vms[uuid]
        self.domain_tracks.pop(uuid, None)
        for config in {self.resource_configs, *self.configs.values()}:
            config.delete(uuid)
        self.system_tags.delete(uuid)
        self.user_tags.delete(uuid)
