"""Admin routes under `/_sim`, outside the ZStack API: JSON, no auth.

They let tests and the sandbox drive a simulator running in another process the same way the Python API
drives one in-process: read stats, change a VM behind the operator's back (track, state, platform, user
tags), create or delete VMs as if someone did it next week, switch faults on and off.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from vmclock.simulator.faults import Faults
from vmclock.simulator.state import NewVm, SimState
from vmclock.simulator.stats import Stats

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# Optional text keys of POST /_sim/vms -> NewVm attributes (left out: NewVm's defaults).
_NEW_VM_TEXT = {
    "platform": "platform",
    "state": "state",
    "zoneUuid": "zone_uuid",
    "clusterUuid": "cluster_uuid",
    "track": "track",
}


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _new_vm(body: dict[str, Any]) -> NewVm:
    """POST /_sim/vms body -> NewVm; ValueError names the first bad key."""
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("name must be a non-empty string")
    chosen: dict[str, Any] = {}
    for key, attribute in _NEW_VM_TEXT.items():
        if body.get(key) is not None:
            if not isinstance(body[key], str):
                raise ValueError(f"{key} must be a string")
            chosen[attribute] = body[key]
    tags = body.get("userTags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise ValueError("userTags must be a list of strings")
    return NewVm(name=name, user_tags=tuple(tags), **chosen)


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body must be a JSON object"}), content_type="application/json"
        )
    return data


class AdminRoutes:
    def __init__(self, state: SimState, stats: Stats, faults: Faults) -> None:
        self._state = state
        self._stats = stats
        self._faults = faults

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/_sim/stats", self.get_stats),
            web.post("/_sim/stats/reset", self.reset_stats),
            web.get("/_sim/vms", self.list_vms),
            web.post("/_sim/vms", self.add_vm),
            web.delete("/_sim/vms/{uuid}", self.delete_vm),
            web.post("/_sim/vms/{uuid}/track", self._vm_change(self._state.set_track_behind, "track")),
            web.post("/_sim/vms/{uuid}/state", self._vm_change(self._state.set_vm_state, "state")),
            web.post("/_sim/vms/{uuid}/platform", self._vm_change(self._state.set_platform, "platform")),
            web.post("/_sim/vms/{uuid}/user-tags", self._vm_change(self._state.add_user_tag, "tag")),
            web.delete("/_sim/vms/{uuid}/user-tags", self._vm_change(self._state.remove_user_tag, "tag")),
            web.post("/_sim/global-config", self.set_global_config),
            web.get("/_sim/faults", self.get_faults),
            web.put("/_sim/faults", self.put_faults),
            web.delete("/_sim/faults", self.clear_faults),
            web.post("/_sim/sessions/expire", self.expire_sessions),
        ]

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self._stats.to_json())

    async def reset_stats(self, request: web.Request) -> web.Response:
        self._stats.reset()
        return web.json_response(self._stats.to_json())

    def _vm_view(self, uuid: str) -> dict[str, Any]:
        vm = self._state.vm(uuid)
        return {
            "uuid": vm.uuid,
            "name": vm.name,
            "platform": vm.platform,
            "state": vm.state,
            "track": self._state.track_of(uuid),
            "domainTrack": self._state.domain_tracks.get(uuid),
            "lastOpDate": vm.inventory()["lastOpDate"],
            "zoneUuid": vm.fields["zoneUuid"],
            "clusterUuid": vm.fields["clusterUuid"],
            "userTags": self._state.user_tags.tags_of(uuid),
        }

    async def list_vms(self, request: web.Request) -> web.Response:
        return web.json_response([self._vm_view(uuid) for uuid in self._state.vm_uuids()])

    async def add_vm(self, request: web.Request) -> web.Response:
        """POST /_sim/vms {"name", "platform"?, "state"?, "zoneUuid"?, "clusterUuid"?, "userTags"?, "track"?}:
        the new VM's view, with the uuid ZStack gave it."""
        try:
            vm = self._state.add_vm(_new_vm(await _json_object(request)))
        except ValueError as error:
            return _error(400, str(error))
        return web.json_response(self._vm_view(vm.uuid))

    async def delete_vm(self, request: web.Request) -> web.Response:
        uuid = request.match_info["uuid"]
        if uuid not in self._state.vms:
            return _error(404, f"no VM with uuid {uuid}")
        self._state.delete_vm(uuid)
        return web.json_response({})

    def _vm_change(self, change: Callable[[str, str], None], key: str) -> _Handler:
        """POST (or DELETE) /_sim/vms/{uuid}/<path> with {"<key>": value}: 404 for an unknown VM or a
        missing tag, 400 for a bad value."""

        async def handler(request: web.Request) -> web.StreamResponse:
            uuid = request.match_info["uuid"]
            if uuid not in self._state.vms:
                return _error(404, f"no VM with uuid {uuid}")
            try:
                change(uuid, str((await _json_object(request)).get(key)))
            except ValueError as error:
                return _error(400, str(error))
            except KeyError as error:  # e.g. removing a user tag the VM does not carry
                return _error(404, str(error.args[0]))
            return web.json_response(self._vm_view(uuid))

        return handler

    async def set_global_config(self, request: web.Request) -> web.Response:
        try:
            self._state.set_global_track(str((await _json_object(request)).get("track")))
        except ValueError as error:
            return _error(400, str(error))
        return web.json_response({"track": self._state.resource_configs.global_value})

    async def get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self._faults.to_json())

    async def put_faults(self, request: web.Request) -> web.Response:
        try:
            self._faults.replace(await _json_object(request))
        except (ValueError, TypeError) as error:
            return _error(400, str(error))
        return web.json_response(self._faults.to_json())

    async def clear_faults(self, request: web.Request) -> web.Response:
        self._faults.clear()
        return web.json_response(self._faults.to_json())

    async def expire_sessions(self, request: web.Request) -> web.Response:
        self._faults.expire_all_sessions()
        return web.json_response({})
