"""Running Argo CD Lua customizations as Argo CD does, and its test-file layouts, on lupa's Lua 5.1.

Argo CD runs health checks and resource actions in gopher-lua (Lua 5.1 semantics) with the standard
libraries switched off unless ``resource.customizations.useOpenLibs.<group_kind>`` is set (argo-cd
``util/lua/lua.go``). What a script from ``argocd-cm`` sees, and so all that :func:`run` offers:

- the base library (``ipairs``, ``pairs``, ``tostring``, ``pcall``...), the table library, ``require``;
- ``os`` reduced to ``time`` and ``date`` (``util/lua/oslib_safe.go``), also as ``require("os")``;
- no ``string``, ``math``, ``io``, ``debug`` or ``coroutine``, and no string methods (``s:lower()``):
  strings get their metatable from the string library, which is never opened;
- the object as the global ``obj``; the script's return value is read back as JSON-like data.

Argo's ``os.date`` is its own strftime: a leading ``!`` means UTC, and only its table of flags is
understood (``%X`` is ``HH:MM:SS``; ``%T`` is not a flag there and stays literally ``%T``).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from lupa import lua51  # Lua 5.1, the semantics of gopher-lua

BASE_FUNCTIONS = [
    "assert",
    "error",
    "getmetatable",
    "ipairs",
    "next",
    "pairs",
    "pcall",
    "print",
    "rawequal",
    "rawget",
    "rawset",
    "select",
    "setmetatable",
    "tonumber",
    "tostring",
    "type",
    "unpack",
    "xpcall",
]
TABLE_FUNCTIONS = ["concat", "insert", "maxn", "remove", "sort"]

# Argo CD's strftime flags (oslib_safe.go) that these tests can reproduce, as Python strftime fragments.
ARGO_DATE_FLAGS = {
    "Y": "%Y",
    "m": "%m",
    "d": "%d",
    "H": "%H",
    "M": "%M",
    "S": "%S",
    "X": "%H:%M:%S",
    "F": "%Y-%m-%d",
    "y": "%y",
}
# Flags Argo CD knows but renders in ways not reproduced here: a script using them fails the test.
ARGO_DATE_FLAGS_NOT_REPRODUCED = set("aAbBcIpPxzZw")

SANDBOX = """
local source, name, obj, safe_os, base_names, table_names = ...
local env = {_VERSION = _VERSION, obj = obj, os = safe_os, table = {}}
for _, key in ipairs(base_names) do env[key] = _G[key] end
for _, key in ipairs(table_names) do env.table[key] = table[key] end
env._G = env
env.require = function(module)
  if module == "os" then return safe_os end
  error("module '" .. tostring(module) .. "' not found")
end
local chunk, problem = loadstring(source, "=" .. name)
if chunk == nil then error(problem, 0) end
setfenv(chunk, env)
debug.setmetatable("", nil)
return chunk()
"""


class ArgoDateFormatError(AssertionError):
    """A script asked ``os.date`` for a flag whose Argo CD rendering these tests do not reproduce."""


def argo_os_date(layout: str = "%c", timestamp: float | None = None) -> str:
    """Argo CD's ``os.date(layout[, time])`` for string layouts (``*t`` tables are not needed here)."""
    utc = layout.startswith("!")
    layout = layout.lstrip("!")
    if layout.startswith("*t"):
        raise ArgoDateFormatError("os.date('*t') is not reproduced")
    when = datetime.datetime.fromtimestamp(time.time() if timestamp is None else timestamp, datetime.UTC)
    moment = when if utc else when.astimezone()
    rendered: list[str] = []
    index = 0
    while index < len(layout):
        char = layout[index]
        if char == "%" and index + 1 < len(layout):
            flag = layout[index + 1]
            index += 2
            if flag == "%":
                rendered.append("%")
            elif flag in ARGO_DATE_FLAGS:
                rendered.append(moment.strftime(ARGO_DATE_FLAGS[flag]))
            elif flag in ARGO_DATE_FLAGS_NOT_REPRODUCED:
                raise ArgoDateFormatError(f"os.date flag %{flag} is not reproduced")
            else:
                rendered.append("%" + flag)  # Argo CD keeps unknown flags as they are
        else:
            rendered.append(char)
            index += 1
    return "".join(rendered)


def from_lua(value: Any, original: Any = None) -> Any:
    """A Lua value as JSON-like Python data, the way Argo CD reads a script's result back.

    Tables with keys 1..n become lists. Argo CD encodes an empty table as ``[]`` and then restores ``{}``
    where the input object had a map (``cleanReturnedObj``), so ``original`` guides empty tables.
    """
    if lua51.lua_type(value) != "table":
        return value
    items = dict(value.items())
    if not items:
        return {} if isinstance(original, Mapping) else []
    if set(items) == set(range(1, len(items) + 1)):
        previous = original if isinstance(original, list) else []
        return [
            from_lua(items[key], previous[key - 1] if key <= len(previous) else None)
            for key in range(1, len(items) + 1)
        ]
    guide = original if isinstance(original, Mapping) else {}
    return {str(key): from_lua(item, guide.get(key)) for key, item in items.items()}


def run(script: Path, obj: Mapping[str, Any]) -> Any:
    """Run ``script`` in a fresh Argo-CD-like sandbox with ``obj`` as the global ``obj``."""
    runtime = lua51.LuaRuntime(unpack_returned_tuples=False)
    safe_os = runtime.table_from({"time": lambda *_: int(time.time()), "date": argo_os_date})
    sandbox = runtime.execute(f"return function(...) {SANDBOX} end")
    result = sandbox(
        script.read_text(),
        script.name,
        runtime.table_from(obj, recursive=True),
        safe_os,
        runtime.table_from(BASE_FUNCTIONS),
        runtime.table_from(TABLE_FUNCTIONS),
    )
    return from_lua(result, obj)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def health_cases(directory: Path) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    """``(inputPath, object, expected healthStatus)`` from an Argo CD ``health_test.yaml``."""
    spec = load_yaml(directory / "health_test.yaml")
    return [
        (test["inputPath"], load_yaml(directory / test["inputPath"]), test["healthStatus"])
        for test in spec["tests"]
    ]


def health(directory: Path, obj: Mapping[str, Any]) -> dict[str, str]:
    """The health ``health.lua`` in ``directory`` reports for ``obj`` (only ``status`` and ``message``)."""
    result = run(directory / "health.lua", obj)
    return {key: result[key] for key in ("status", "message") if key in result}


def discovered_actions(directory: Path, obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``discovery.lua``'s actions as Argo CD lists them (``disabled`` defaults to false), by name."""
    actions = run(directory / "discovery.lua", obj)
    return sorted(
        ({"name": name, "disabled": False, **definition} for name, definition in actions.items()),
        key=lambda action: action["name"],
    )


def perform_action(directory: Path, action: str, obj: Mapping[str, Any]) -> Any:
    """The object ``<action>/action.lua`` in ``directory`` returns for ``obj``."""
    return run(directory / action / "action.lua", obj)
