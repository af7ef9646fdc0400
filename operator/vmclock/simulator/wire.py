"""Bytes on the wire the way ZStack's RestServer writes them (zstack-api.md §1, §2).

RestServer sets only the character encoding, never a Content-Type, so a client that insists on
`application/json` breaks against a real MN; aiohttp adds `application/octet-stream` to any body by default,
so ZStack responses are marked and the marker strips the header just before the headers are written.
Bodies are compact Gson-style JSON (null fields left out) and dates use Gson's default format.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import hdrs, web

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

ZSTACK_RESPONSE = web.ResponseKey("vmclock_zstack_response", bool)

# Java classes of nested inventories, for the `schema` map RestServer adds (JsonSchemaBuilder).
NESTED_CLASSES = {
    "vmNics": "org.zstack.header.vm.VmNicInventory",
    "allVolumes": "org.zstack.header.volume.VolumeInventory",
    "vmCdRoms": "org.zstack.header.vm.cdrom.VmCdRomInventory",
    "effectiveConfigs": "org.zstack.resourceconfig.ResourceConfigInventory",
}


def gson_date(epoch: float) -> str:
    """Gson's default Date format, e.g. "Jan 6, 2017 3:51:16 AM".

    Rendered in UTC, not the host's zone, so seeded inventories are identical on every machine.
    """
    d = datetime.fromtimestamp(epoch, tz=UTC)
    hour = d.hour % 12 or 12
    return f"{MONTHS[d.month - 1]} {d.day}, {d.year} {hour}:{d:%M:%S} {'AM' if d.hour < 12 else 'PM'}"


def compact(data: Mapping[str, Any]) -> dict[str, Any]:
    """Gson leaves out null fields."""
    return {k: v for k, v in data.items() if v is not None}


def zstack_response(status: int, body: bytes) -> web.Response:
    resp = web.Response(status=status, body=body)
    resp[ZSTACK_RESPONSE] = True
    return resp


def json_response(status: int, data: Mapping[str, Any]) -> web.Response:
    return zstack_response(status, json.dumps(data, separators=(",", ":")).encode("utf-8"))


def text_response(status: int, text: str) -> web.Response:
    return zstack_response(status, text.encode("utf-8"))


async def strip_content_type(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare` hook: runs after aiohttp filled in its default Content-Type."""
    if response.get(ZSTACK_RESPONSE):
        response.headers.popall(hdrs.CONTENT_TYPE, None)


def build_schema(body: Mapping[str, Any], classes: Mapping[str, str]) -> dict[str, str]:
    """RestServer's `schema`: JSON path of every ZStack object in the body -> its Java class.

    `classes` names the class of each top-level key holding an object or a list of objects; nested
    lists are known by field name. Children come before their parent, as JsonSchemaBuilder emits them.
    """
    schema: dict[str, str] = {}

    def walk(obj: Mapping[str, Any], path: str, cls: str) -> None:
        for name, value in obj.items():
            nested = NESTED_CLASSES.get(name)
            if nested is not None and isinstance(value, list):
                for i, item in enumerate(value):
                    walk(item, f"{path}.{name}[{i}]", nested)
        schema[path] = cls

    for key, cls in classes.items():
        value = body.get(key)
        if isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{key}[{i}]", cls)
        elif isinstance(value, Mapping):
            walk(value, key, cls)
    return schema
