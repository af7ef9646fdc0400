"""Typed views of the ZStack objects the operator reads and reports."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, get_args

Track = Literal["guest", "host"]
TRACKS: tuple[str, ...] = get_args(Track)

# Platforms whose VMs get `clock offset='localtime'`, the only case where ZStack emits the RTC track
# (zstack-api.md §5 "When it takes effect").
TRACK_EFFECTIVE_PLATFORMS = frozenset({"Windows", "WindowsVirtio"})


class StorageMode(StrEnum):
    """Where a ZStack version keeps a VM's clock track (zstack-api.md §5)."""

    RESOURCE_CONFIG = "ResourceConfig"  # >= 4.3.12: resource config vm.clock.track, global default
    SYSTEM_TAG = "SystemTag"  # 4.1.0 .. 4.3.10: system tag clockTrack::guest, absence means host


_VERSION_RE = re.compile(r"(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True, order=True)
class ZStackVersion:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> ZStackVersion:
        """Accept what getVersion returns ("4.3.12", "5.3.0.123", "zstack-4.8.0"), keeping x.y.z."""
        match = _VERSION_RE.search(text)
        if not match:
            raise ValueError(f"unrecognised ZStack version {text!r}; expected x.y.z")
        return cls(*(int(g) for g in match.groups()))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def supports_clock_track(self) -> bool:
        return self >= ZStackVersion(4, 1, 0)

    @property
    def storage_mode(self) -> StorageMode:
        return StorageMode.RESOURCE_CONFIG if self >= ZStackVersion(4, 3, 12) else StorageMode.SYSTEM_TAG


@dataclass(frozen=True)
class VmInventory:
    """The compact part of VmInstanceInventory that status carries (no NIC or volume lists)."""

    uuid: str
    name: str = ""
    state: str = ""
    platform: str = ""
    hypervisor_type: str = ""
    zone_uuid: str = ""
    cluster_uuid: str = ""
    host_uuid: str = ""
    cpu_num: int = 0
    memory_size: int = 0
    last_op_date: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VmInventory:
        return cls(
            uuid=str(data["uuid"]),
            name=str(data.get("name") or ""),
            state=str(data.get("state") or ""),
            platform=str(data.get("platform") or ""),
            hypervisor_type=str(data.get("hypervisorType") or ""),
            zone_uuid=str(data.get("zoneUuid") or ""),
            cluster_uuid=str(data.get("clusterUuid") or ""),
            host_uuid=str(data.get("hostUuid") or data.get("lastHostUuid") or ""),
            cpu_num=int(data.get("cpuNum") or 0),
            memory_size=int(data.get("memorySize") or 0),
            last_op_date=str(data.get("lastOpDate") or ""),
        )

    @property
    def track_takes_effect(self) -> bool:
        return self.platform in TRACK_EFFECTIVE_PLATFORMS

    def to_status(self) -> dict[str, Any]:
        """camelCase, empty fields left out, as declared in the CRD's status.vms[].inventory."""
        out: dict[str, Any] = {
            "uuid": self.uuid,
            "name": self.name,
            "state": self.state,
            "platform": self.platform,
            "hypervisorType": self.hypervisor_type,
            "zoneUuid": self.zone_uuid,
            "clusterUuid": self.cluster_uuid,
            "hostUuid": self.host_uuid,
            "cpuNum": self.cpu_num,
            "memorySize": self.memory_size,
            "lastOpDate": self.last_op_date,
        }
        return {k: v for k, v in out.items() if v not in ("", 0)}
