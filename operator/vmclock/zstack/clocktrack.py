"""Read and write a VM's RTC clock track, wherever this ZStack version keeps it (zstack-api.md §5).

- >= 4.3.12: resource config `vm.clock.track` per VM; a VM without a row inherits the global value.
- 4.1.0 - 4.3.10: system tag `clockTrack::guest` on the VM; no tag means `host`.
There is no GetVmClockTrack API and the VM inventory has no track field, hence these bulk queries.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, cast

from vmclock.zstack.calls import Api
from vmclock.zstack.errors import GARBAGE, REPLY_TOO_LARGE, MaySend, ZStackError
from vmclock.zstack.inventory import parse_inventory, row_text
from vmclock.zstack.listing import Listing, query_all, query_any_of
from vmclock.zstack.models import TRACKS, VM_UUID_RE, StorageMode, Track, VmInventory
from vmclock.zstack.query import Shape, eq

SET_API = "SetVmClockTrack"
CONFIG_NAME = "vm.clock.track"
CONFIG_CATEGORY = "vm"
GUEST_TAG = "clockTrack::guest"
ZSTACK_DEFAULT_TRACK: Track = "host"  # conf/globalConfig/vm.xml

# Always queried with name=vm.clock.track, under which a VM has at most one row.
RESOURCE_CONFIGS = Listing(
    "QueryResourceConfig",
    "/v1/resource-configurations",
    Shape(sort="uuid", fields=("resourceUuid", "value")),
    unique="resourceUuid",
)
GLOBAL_CONFIGS = Listing("QueryGlobalConfig", "/v1/global-configurations")
SYSTEM_TAGS = Listing("QuerySystemTag", "/v1/system-tags", Shape(sort="uuid", fields=("resourceUuid",)))


def as_track(value: Any, operation: str) -> Track:
    if value not in TRACKS:
        raise ZStackError.client(
            GARBAGE, "clock track value is neither guest nor host", str(value)[:64], operation=operation
        )
    return cast(Track, value)


async def read_tracks(
    api: Api, mode: StorageMode, existing: Collection[str], *, page_size: int
) -> dict[str, Track]:
    """The effective track of each VM in `existing` (uuids already known to exist)."""
    uuids = sorted(existing)
    if not uuids:
        return {}
    if mode is StorageMode.SYSTEM_TAG:
        return await _tracks_from_tags(api, uuids, page_size=page_size)
    return await _tracks_from_configs(api, uuids, page_size=page_size)


async def read_tracks_in_bulk(
    api: Api, mode: StorageMode, existing: Collection[str], *, page_size: int
) -> dict[str, Track]:
    """Like `read_tracks`, for a large set: every `vm.clock.track` row (or every `clockTrack::guest` tag)
    plus the global default, instead of `resourceUuid?=` batches of ~230 UUIDs per request line.

    10,000 VMs cost ~44 batched requests but only rows/page_size pages this way. Rows of VMs outside
    `existing` are read and dropped; when ZStack holds more rows than one listing may return
    (REPLY_TOO_LARGE), the batched reads take over, so a huge installation costs requests, not memory."""
    uuids = set(existing)
    if not uuids:
        return {}
    try:
        if mode is StorageMode.SYSTEM_TAG:
            rows = await query_all(api, SYSTEM_TAGS, [eq("tag", GUEST_TAG)], page_size=page_size)
            return _tracks_from_tag_rows(rows, uuids)
        rows = await query_all(api, RESOURCE_CONFIGS, [eq("name", CONFIG_NAME)], page_size=page_size)
    except ZStackError as exc:
        if exc.code != REPLY_TOO_LARGE:
            raise
        return await read_tracks(api, mode, uuids, page_size=page_size)
    return await _own_or_global(api, _own_tracks(rows, uuids), uuids, page_size=page_size)


def _own_tracks(rows: list[dict[str, Any]], wanted: Collection[str]) -> dict[str, Track]:
    own: dict[str, Track] = {}
    for row in rows:
        uuid = row_text(row, "resourceUuid", RESOURCE_CONFIGS.api)
        if uuid in wanted:
            own[uuid] = as_track(row.get("value"), RESOURCE_CONFIGS.api)
    return own


async def _own_or_global(
    api: Api, own: dict[str, Track], uuids: Collection[str], *, page_size: int
) -> dict[str, Track]:
    """Each VM's own row, else the global value (read only when some VM has no row of its own)."""
    if all(uuid in own for uuid in uuids):
        return {uuid: own[uuid] for uuid in uuids}
    default = await global_track(api, page_size=page_size)
    return {uuid: own.get(uuid, default) for uuid in uuids}


async def _tracks_from_tags(api: Api, uuids: list[str], *, page_size: int) -> dict[str, Track]:
    """4.1.0 - 4.3.10: tagged `clockTrack::guest` means guest, untagged means host."""
    conditions = [eq("tag", GUEST_TAG)]
    rows = await query_any_of(api, SYSTEM_TAGS, conditions, "resourceUuid", uuids, page_size=page_size)
    return _tracks_from_tag_rows(rows, uuids)


def _tracks_from_tag_rows(rows: list[dict[str, Any]], uuids: Collection[str]) -> dict[str, Track]:
    """Tagged `clockTrack::guest` means guest, untagged means host (the counterpart of `_own_tracks`)."""
    tagged = {row_text(row, "resourceUuid", SYSTEM_TAGS.api) for row in rows}
    return {uuid: "guest" if uuid in tagged else "host" for uuid in uuids}


async def _tracks_from_configs(api: Api, uuids: list[str], *, page_size: int) -> dict[str, Track]:
    """>= 4.3.12: the VM's own resource config row, else the global value (read only when needed)."""
    conditions = [eq("name", CONFIG_NAME)]
    rows = await query_any_of(api, RESOURCE_CONFIGS, conditions, "resourceUuid", uuids, page_size=page_size)
    return await _own_or_global(api, _own_tracks(rows, set(uuids)), uuids, page_size=page_size)


async def global_track(api: Api, *, page_size: int) -> Track:
    """The global `vm.clock.track`, which every VM without its own resource config inherits."""
    conditions = [eq("category", CONFIG_CATEGORY), eq("name", CONFIG_NAME)]
    rows = await query_all(api, GLOBAL_CONFIGS, conditions, page_size=page_size)
    if not rows:
        return ZSTACK_DEFAULT_TRACK
    return as_track(rows[0].get("value"), GLOBAL_CONFIGS.api)


async def write_track(
    api: Api,
    uuid: str,
    track: str,
    *,
    sync_after_vm_resume: bool | None = None,
    interval_in_seconds: int | None = None,
    may_send: MaySend | None = None,
) -> VmInventory:
    """SetVmClockTrack as an async job; the job's result is the VM's whole inventory, reloaded.

    Only `track` is sent unless the caller asks for the QGA fields: sending them (even false/0) takes
    ZStack's closed-source SetVmQgaSyncClockTask path, which also rewrites the VM's vm.clock.sync.* resource
    configs and, if it fails, discards the track as well.
    """
    if not VM_UUID_RE.match(uuid):
        raise ValueError(f"VM uuid {uuid!r} is not 32 lowercase hex characters")
    if track not in TRACKS:
        raise ValueError(f"track {track!r} must be one of {', '.join(TRACKS)}")
    params: dict[str, Any] = {"track": track}
    if sync_after_vm_resume is not None:
        params["syncAfterVMResume"] = sync_after_vm_resume
    if interval_in_seconds is not None:
        params["intervalInSeconds"] = interval_in_seconds
    body = {"setVmClockTrack": params, "systemTags": [], "userTags": []}
    result = await api.job(SET_API, "PUT", f"/v1/vm-instances/{uuid}/actions", body, may_send=may_send)
    return parse_inventory(result.get("inventory"), SET_API)
