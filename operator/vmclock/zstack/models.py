"""Typed views of the ZStack objects the operator reads and reports."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, get_args

VM_UUID_RE = re.compile(r"^[0-9a-f]{32}$")  # what spec.vmUuids and status.vms[].uuid accept

Track = Literal["guest", "host"]
TRACKS: tuple[str, ...] = get_args(Track)

# Platforms whose VMs get `clock offset='localtime'`, the only case where ZStack emits the RTC track
# (zstack-api.md §5 "When it takes effect").
TRACK_EFFECTIVE_PLATFORMS = frozenset({"Windows", "WindowsVirtio"})


class StorageMode(StrEnum):
    """Where a ZStack version keeps a VM's clock track (zstack-api.md §5)."""

    RESOURCE_CONFIG = "ResourceConfig"  # >= 4.3.12: resource config vm.clock.track, global default
    SYSTEM_TAG = "SystemTag"  # 4.1.0 .. 4.3.10: system tag clockTrack::guest, absence means host


# getVersion answers before anything proves the endpoint is ZStack, so its text is untrusted: only a short
# head is searched, with bounded groups (`\d+` over a megabyte of digits is quadratic: hours of blocked loop).
VERSION_HEAD = 64
_VERSION_RE = re.compile(r"(\d{1,9})\.(\d{1,9})\.(\d{1,9})")

# status.vms[].inventory's maxLength per field (crds/vmclock.zstack.io_vmclockpolicies.yaml): longer values
# are cut when parsed, so a status PATCH can never fail validation (422) because of what ZStack sent.
NAME_MAX = 255
FIELD_MAX = 64
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


@dataclass(frozen=True, order=True)
class ZStackVersion:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> ZStackVersion:
        """Accept what getVersion returns ("4.3.12", "5.3.0.123", "zstack-4.8.0"), keeping x.y.z.

        Only the first VERSION_HEAD characters are looked at.
        """
        head = text[:VERSION_HEAD]
        match = _VERSION_RE.search(head)
        if not match:
            raise ValueError(f"unrecognised ZStack version {head[:32]!r}; expected x.y.z")
        return cls(*(int(g) for g in match.groups()))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def supports_clock_track(self) -> bool:
        return self >= ZStackVersion(4, 1, 0)

    @property
    def storage_mode(self) -> StorageMode:
        return StorageMode.RESOURCE_CONFIG if self >= ZStackVersion(4, 3, 12) else StorageMode.SYSTEM_TAG


@dataclass(frozen=True, slots=True)
class VmInventory:
    """The compact part of VmInstanceInventory that status carries (no NIC or volume lists). Slotted, and
    the values VMs share (state, platform, zone, cluster, host) held once: a connection's shared observer
    keeps one per VM it read (10,000 of them after a big selector policy's round)."""

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

    # ZStack's field names, in the order of the dataclass fields: what a VM query asks for with `fields=`.
    ZSTACK_FIELDS = (
        "uuid", "name", "state", "platform", "hypervisorType", "zoneUuid", "clusterUuid", "hostUuid",
        "lastHostUuid", "cpuNum", "memorySize", "lastOpDate",
    )  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VmInventory:
        """One VmInstanceInventory, texts cut and numbers clamped to what status allows.

        Raises TypeError, ValueError or OverflowError (a float like 1e400 is infinite) for a malformed row.
        """
        return cls(
            uuid=_text(data["uuid"], FIELD_MAX),
            name=_text(data.get("name"), NAME_MAX),
            state=_shared(data.get("state")),
            platform=_shared(data.get("platform")),
            hypervisor_type=_shared(data.get("hypervisorType")),
            zone_uuid=_shared(data.get("zoneUuid")),
            cluster_uuid=_shared(data.get("clusterUuid")),
            host_uuid=_shared(data.get("hostUuid") or data.get("lastHostUuid")),
            cpu_num=_count(data.get("cpuNum"), INT32_MAX),
            memory_size=_count(data.get("memorySize"), INT64_MAX),
            last_op_date=_text(data.get("lastOpDate"), FIELD_MAX),
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


def _text(value: Any, limit: int) -> str:
    if isinstance(value, dict | list):
        raise TypeError("inventory text field holds a JSON container")
    return str(value or "")[:limit]


def _shared(value: Any) -> str:
    """A text field many VMs have alike: every decoded reply brings its own copy, one string is kept (an
    interned string still goes once nothing uses it)."""
    return sys.intern(_text(value, FIELD_MAX))


def _count(value: Any, ceiling: int) -> int:
    """A non-negative integer field (status declares minimum 0 and an int32/int64 format)."""
    return min(ceiling, max(0, int(value or 0)))
