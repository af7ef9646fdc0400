"""Running Argo CD Lua customizations as Argo CD does, and its test-file layouts, on lupa's Lua 5.1.

Argo CD (v3.x, ``util/lua/lua.go``) runs health checks and resource actions in gopher-lua (Lua 5.1 semantics)
with ``SkipOpenLibs`` unless ``resource.customizations.useOpenLibs.<group_kind>`` is set, and then opens only
gopher-lua's package, base and table libraries plus its own safe ``os`` (``util/lua/oslib_safe.go``). Each
:func:`run` reshapes a fresh lupa runtime's globals into that VM, so a script that passes here does not meet a
missing function there:

- gopher-lua's base library, including ``load``/``loadstring``/``dofile``/``getfenv``/``setfenv``, and
  ``module``/``require``; ``package`` with only the preload and Lua-file loaders (no C modules);
- gopher-lua's table library; **no global** ``os`` (Argo CD's ``OpenSafeOs`` registers its functions under
  the already loaded name ``table``, which gopher-lua's ``RegisterModule`` leaves as it is): only
  ``require("os")`` returns a table, with ``time`` and ``date`` alone;
- no ``string``, ``math``, ``io``, ``debug`` or ``coroutine``, and no string methods (``s:lower()``):
  strings get their metatable from the string library, which is never opened;
- numbers rendered the way gopher-lua renders them (``LNumber.String``) by ``tostring``, ``print`` and
  ``table.concat``: integer values as integers, others in Go's shortest ``%v`` form (``1e+15`` in Lua 5.1 is
  ``1000000000000000`` there, ``1/3`` is ``0.3333333333333333``). The ``..`` operator converts numbers inside
  the Lua 5.1 VM, where no hook exists: scripts pass numbers through ``tostring`` before concatenating;
- the object as the global ``obj`` and ``actionParams`` (empty: our actions take no parameters); the
  script's return value is read back as JSON-like data.

Argo's ``os.date`` is its own strftime: a leading ``!`` means UTC unless a time is given (then the time is
local), and only its table of flags is understood (``%X`` is ``HH:MM:SS``; ``%T`` is not a flag there and
stays literally ``%T``). gopher-lua's ``_printregs`` debugging helper is not reproduced.
"""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from lupa import lua51  # Lua 5.1, the semantics of gopher-lua

# gopher-lua's OpenBase (module and require come from its loadlib), without the _printregs debug helper.
BASE_GLOBALS = [
    "_G",
    "_VERSION",
    "assert",
    "collectgarbage",
    "dofile",
    "error",
    "getfenv",
    "getmetatable",
    "ipairs",
    "load",
    "loadfile",
    "loadstring",
    "module",
    "newproxy",
    "next",
    "pairs",
    "pcall",
    "print",
    "rawequal",
    "rawget",
    "rawset",
    "require",
    "select",
    "setfenv",
    "setmetatable",
    "tonumber",
    "tostring",
    "type",
    "unpack",
    "xpcall",
]
LIBRARIES = ["package", "table"]
TABLE_FUNCTIONS = ["concat", "getn", "insert", "maxn", "remove", "sort"]
GOPHER_LUA_VERSION = "GopherLua 0.1"

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

# Turns lupa's default globals into Argo CD's: run once per runtime, before the script.
SHAPE = """
local keep_globals, keep_tables, number_to_string, os_time, os_date, gopher_version = ...
local keep = {}
for _, name in ipairs(keep_globals) do keep[name] = true end
local names = {}
for name in pairs(_G) do names[#names + 1] = name end
-- Strings get a metatable (for s:upper()) only from the string library, which Argo CD never opens.
debug.setmetatable("", nil)
for _, name in ipairs(names) do
  if not keep[name] then _G[name] = nil end
end
_GOPHER_LUA_VERSION = gopher_version

keep = {}
for _, name in ipairs(keep_tables) do keep[name] = true end
for name in pairs(table) do
  if not keep[name] then table[name] = nil end
end
for name in pairs(package.loaded) do
  if name ~= "_G" and name ~= "table" then package.loaded[name] = nil end
end
package.preload.os = function()
  return {
    time = function(...) return os_time(...) end,
    date = function(...) return os_date(...) end,
  }
end
package.loaders[4], package.loaders[3] = nil, nil
package.cpath = ""
package.loadlib = function() error("loadlib is not supported") end

local raw_tostring, raw_concat = tostring, table.concat
tostring = function(...)
  if type((...)) == "number" then return number_to_string((...)) end
  return raw_tostring(...)
end
table.concat = function(list, separator, first, last)
  first, last = first or 1, last or #list
  local parts = {}
  for index = first, last do
    local item = list[index]
    if type(item) == "number" then item = number_to_string(item) end
    parts[index - first + 1] = item
  end
  return raw_concat(parts, separator or "", 1, last - first + 1)
end
"""

RUN = """
local source, name, obj = ...
_G.obj, _G.actionParams = obj, {}
local chunk, problem = loadstring(source, "=" .. name)
if chunk == nil then error(problem, 0) end
return chunk()
"""


class ArgoDateFormatError(AssertionError):
    """A script asked ``os.date``/``os.time`` for a result of Argo CD's that these tests do not reproduce."""


def gopher_number(value: float) -> str:
    """A Lua number as gopher-lua's ``LNumber.String`` renders it: Go's ``int64`` text when the value
    survives a round trip through ``int64``, else Go's ``fmt.Sprint(float64)`` (shortest digits, ``%e`` form
    when the exponent is below -4 or at least 6)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if -(2**63) <= value < 2**63 and value == int(value):
        return str(int(value))
    sign, digit_tuple, exponent = Decimal(repr(float(value))).as_tuple()  # repr: Go's shortest digits too
    assert isinstance(exponent, int)
    all_digits = "".join(map(str, digit_tuple))
    digits = all_digits.rstrip("0")
    point = len(all_digits) + exponent  # digits before the decimal point
    prefix = "-" if sign else ""
    if point - 1 < -4 or point - 1 >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if point - 1 < 0 else '+'}{abs(point - 1):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{digits}"
    return f"{prefix}{digits[:point]}.{digits[point:]}"


def argo_os_time(*arguments: Any) -> int:
    """Argo CD's ``os.time()``; the table form (local time with Go's defaults) is not reproduced."""
    if arguments:
        raise ArgoDateFormatError("os.time(table) is not reproduced")
    return int(time.time())


def argo_os_date(layout: str = "%c", timestamp: float | None = None) -> str:
    """Argo CD's ``os.date(layout[, time])`` for string layouts (``*t`` tables are not needed here).

    As in oslib_safe.go, ``!`` selects UTC only for the current time: a given time is rendered in local time.
    """
    utc = layout.startswith("!")
    layout = layout.lstrip("!")
    if layout.startswith("*t"):
        raise ArgoDateFormatError("os.date('*t') is not reproduced")
    if timestamp is not None:
        moment = datetime.datetime.fromtimestamp(timestamp).astimezone()
    elif utc:
        moment = datetime.datetime.now(datetime.UTC)
    else:
        moment = datetime.datetime.now().astimezone()
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


def runtime() -> Any:
    """A fresh lupa runtime whose globals are those of Argo CD's Lua VM (see the module docstring)."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=False, register_eval=False, register_builtins=False)
    lua.execute(
        SHAPE,
        lua.table_from(BASE_GLOBALS + LIBRARIES),
        lua.table_from(TABLE_FUNCTIONS),
        gopher_number,
        argo_os_time,
        argo_os_date,
        GOPHER_LUA_VERSION,
    )
    return lua


def run(script: Path, obj: Mapping[str, Any]) -> Any:
    """Run ``script`` in a fresh Argo-CD-like VM with ``obj`` as the global ``obj``."""
    lua = runtime()
    result = lua.execute(
        RUN,
        script.read_text(),
        script.name,
        lua.table_from(obj, recursive=True),
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
