"""Where a VM's clock track and its QGA clock-sync settings live, per ZStack release (zstack-api.md §5).

>= 4.3.12 keeps the track in resource config `vm.clock.track`: an optional per-VM row over a global value
(default `host`); SetVmClockTrack always writes an explicit row, DeleteResourceConfig removes it.
4.1.0 - 4.3.10 keep it in the system tag `clockTrack::guest`: present means guest, absent means host.
>= 4.4.24 adds two more VM-bound configs, `vm.clock.sync.interval.in.seconds` and
`vm.clock.sync.after.vm.resume`, which SetVmClockTrack's QGA step writes per VM (VmGlobalConfig.java).
"""

from __future__ import annotations

import time
import uuid as uuidlib
from dataclasses import dataclass
from typing import Any

from vmclock.simulator.wire import gson_date

TRACKS = ("guest", "host")  # VmClockTrack enum; the simulator keeps its own copy as the test oracle
QGA_INTERVALS = ("0", "60", "600", "1800", "3600", "7200", "21600", "43200", "86400")
CLOCK_TRACK = "vm.clock.track"
SYNC_INTERVAL = "vm.clock.sync.interval.in.seconds"
SYNC_AFTER_RESUME = "vm.clock.sync.after.vm.resume"
CATEGORY = "vm"
VM_RESOURCE_TYPE = "VmInstanceVO"
GUEST_TAG = "clockTrack::guest"


@dataclass(frozen=True)
class ConfigDef:
    """A VmGlobalConfig bound to VmInstanceVO (`@BindResourceConfig`): name, default and validValues."""

    name: str
    default: str
    valid_values: tuple[str, ...]
    description: str


CLOCK_TRACK_CONFIG = ConfigDef(CLOCK_TRACK, "host", TRACKS, "the RTC clock track of a VM: guest or host")
QGA_CONFIGS = (
    ConfigDef(SYNC_INTERVAL, "0", QGA_INTERVALS, "vm clock sync interval in seconds"),
    ConfigDef(SYNC_AFTER_RESUME, "false", ("true", "false"), "sync clock after vm resume"),
)


def check_track(track: str) -> str:
    if track not in TRACKS:
        raise ValueError(f"track must be one of {TRACKS}, not {track!r}")
    return track


@dataclass
class Row:
    """A ResourceConfigVO or SystemTagVO: a uuid, a value and its timestamps."""

    uuid: str
    resource_uuid: str
    value: str
    created: float
    last_op: float

    @classmethod
    def new(cls, resource_uuid: str, value: str, uuid: str | None = None) -> Row:
        now = time.time()
        return cls(uuid or uuidlib.uuid4().hex, resource_uuid, value, now, now)

    def dates(self) -> dict[str, str]:
        return {"createDate": gson_date(self.created), "lastOpDate": gson_date(self.last_op)}


class ResourceConfig:
    """One VM-bound resource config: per-VM rows over the global value (GetResourceConfig answers the row,
    else the global value)."""

    def __init__(self, definition: ConfigDef) -> None:
        self.definition = definition
        self.global_value = definition.default
        self.rows: dict[str, Row] = {}

    def seed(self, vm_uuid: str, value: str, row_uuid: str) -> None:
        self.rows[vm_uuid] = Row.new(vm_uuid, value, row_uuid)

    def effective(self, vm_uuid: str) -> str:
        row = self.rows.get(vm_uuid)
        return row.value if row else self.global_value

    def set(self, vm_uuid: str, value: str) -> None:
        row = self.rows.get(vm_uuid)
        if row is None:
            self.rows[vm_uuid] = Row.new(vm_uuid, value)
        else:
            row.value, row.last_op = value, time.time()

    def delete(self, vm_uuid: str) -> None:
        self.rows.pop(vm_uuid, None)

    def row_inventory(self, vm_uuid: str) -> dict[str, Any]:
        row = self.rows[vm_uuid]
        return {
            "uuid": row.uuid,
            "resourceUuid": row.resource_uuid,
            "resourceType": VM_RESOURCE_TYPE,
            "name": self.definition.name,
            "description": self.definition.name,
            "category": CATEGORY,
            "value": row.value,
            **row.dates(),
        }

    def global_inventory(self) -> dict[str, Any]:
        return {
            "name": self.definition.name,
            "category": CATEGORY,
            "description": self.definition.description,
            "defaultValue": self.definition.default,
            "value": self.global_value,
        }


class SystemTagTracks:
    """`clockTrack::guest` system tags; SetVmClockTrack(host) deletes the tag."""

    def __init__(self) -> None:
        self.tags: dict[str, Row] = {}

    def seed(self, vm_uuid: str, row_uuid: str) -> None:
        self.tags[vm_uuid] = Row.new(vm_uuid, GUEST_TAG, row_uuid)

    def effective(self, vm_uuid: str) -> str:
        return "guest" if vm_uuid in self.tags else "host"

    def set(self, vm_uuid: str, track: str) -> None:
        self.tags.pop(vm_uuid, None)
        if track == "guest":  # the 4.1.0 handler re-creates the tag
            self.tags[vm_uuid] = Row.new(vm_uuid, GUEST_TAG)

    def delete(self, vm_uuid: str) -> None:
        self.tags.pop(vm_uuid, None)

    def tags_of(self, vm_uuid: str) -> list[str]:
        return [GUEST_TAG] if vm_uuid in self.tags else []

    def tag_inventories(self) -> list[dict[str, Any]]:
        return [tag_inventory(row, "System") for row in self.tags.values()]


def tag_inventory(row: Row, kind: str) -> dict[str, Any]:
    """SystemTagInventory / UserTagInventory (TagInventory's fields; `inherent` only on system tags)."""
    inventory: dict[str, Any] = {
        "uuid": row.uuid,
        "resourceUuid": row.resource_uuid,
        "resourceType": VM_RESOURCE_TYPE,
        "tag": row.value,
        "type": kind,
    }
    if kind == "System":
        inventory["inherent"] = False
    return {**inventory, **row.dates()}
