"""Where a VM's clock track lives, per ZStack release (zstack-api.md §5).

>= 4.3.12 keeps it in resource config `vm.clock.track`: an optional per-VM row over a global value
(default `host`); SetVmClockTrack always writes an explicit row, DeleteResourceConfig removes it.
4.1.0 - 4.3.10 keep it in the system tag `clockTrack::guest`: present means guest, absent means host.
"""

from __future__ import annotations

import time
import uuid as uuidlib
from dataclasses import dataclass
from typing import Any

from vmclock.simulator.wire import gson_date

TRACKS = ("guest", "host")  # VmClockTrack enum; the simulator keeps its own copy as the test oracle
CLOCK_TRACK = "vm.clock.track"
CATEGORY = "vm"
VM_RESOURCE_TYPE = "VmInstanceVO"
GUEST_TAG = "clockTrack::guest"


def check_track(track: str) -> str:
    if track not in TRACKS:
        raise ValueError(f"track must be one of {TRACKS}, not {track!r}")
    return track


@dataclass
class _Row:
    """A ResourceConfigVO or SystemTagVO: a uuid, a value and its timestamps."""

    uuid: str
    resource_uuid: str
    value: str
    created: float
    last_op: float

    @classmethod
    def new(cls, resource_uuid: str, value: str, uuid: str | None = None) -> _Row:
        now = time.time()
        return cls(uuid or uuidlib.uuid4().hex, resource_uuid, value, now, now)

    def dates(self) -> dict[str, str]:
        return {"createDate": gson_date(self.created), "lastOpDate": gson_date(self.last_op)}


class ResourceConfigTracks:
    """Per-VM `vm.clock.track` rows over the global value."""

    def __init__(self) -> None:
        self.global_value = "host"
        self.rows: dict[str, _Row] = {}

    def seed(self, vm_uuid: str, track: str, row_uuid: str) -> None:
        self.rows[vm_uuid] = _Row.new(vm_uuid, track, row_uuid)

    def effective(self, vm_uuid: str) -> str:
        row = self.rows.get(vm_uuid)
        return row.value if row else self.global_value

    def set(self, vm_uuid: str, track: str) -> None:
        row = self.rows.get(vm_uuid)
        if row is None:
            self.rows[vm_uuid] = _Row.new(vm_uuid, track)
        else:
            row.value, row.last_op = track, time.time()

    def delete(self, vm_uuid: str) -> None:
        self.rows.pop(vm_uuid, None)

    def row_inventory(self, vm_uuid: str) -> dict[str, Any]:
        row = self.rows[vm_uuid]
        return {
            "uuid": row.uuid,
            "resourceUuid": row.resource_uuid,
            "resourceType": VM_RESOURCE_TYPE,
            "name": CLOCK_TRACK,
            "description": CLOCK_TRACK,
            "category": CATEGORY,
            "value": row.value,
            **row.dates(),
        }

    def row_inventories(self) -> list[dict[str, Any]]:
        return [self.row_inventory(vm_uuid) for vm_uuid in self.rows]

    def global_inventory(self) -> dict[str, Any]:
        return {
            "name": CLOCK_TRACK,
            "category": CATEGORY,
            "description": "the RTC clock track of a VM: guest or host",
            "defaultValue": "host",
            "value": self.global_value,
        }


class SystemTagTracks:
    """`clockTrack::guest` system tags; SetVmClockTrack(host) deletes the tag."""

    def __init__(self) -> None:
        self.tags: dict[str, _Row] = {}

    def seed(self, vm_uuid: str, row_uuid: str) -> None:
        self.tags[vm_uuid] = _Row.new(vm_uuid, GUEST_TAG, row_uuid)

    def effective(self, vm_uuid: str) -> str:
        return "guest" if vm_uuid in self.tags else "host"

    def set(self, vm_uuid: str, track: str) -> None:
        self.tags.pop(vm_uuid, None)
        if track == "guest":  # the 4.1.0 handler re-creates the tag
            self.tags[vm_uuid] = _Row.new(vm_uuid, GUEST_TAG)

    def tags_of(self, vm_uuid: str) -> list[str]:
        return [GUEST_TAG] if vm_uuid in self.tags else []

    def tag_inventories(self) -> list[dict[str, Any]]:
        return [
            {
                "uuid": row.uuid,
                "resourceUuid": row.resource_uuid,
                "resourceType": VM_RESOURCE_TYPE,
                "tag": row.value,
                "type": "System",
                "inherent": False,
                **row.dates(),
            }
            for row in self.tags.values()
        ]
