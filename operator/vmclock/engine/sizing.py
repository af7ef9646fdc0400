"""Keep a policy's status small enough for the API server and for watchers.

A full entry with its inventory is about 550 bytes, so 1000 VMs would be ~550 KB. The budget (256 KiB) is
met by shedding detail where it matters least, one stage at a time until the status fits:
1. VMs that are fine (InSync/Applied) keep only name/state/platform of their inventory;
2. VMs that are fine lose inventory and message;
3. every VM loses inventory and message, and errors keep only their code.
A VM with `pendingRestart` always keeps `state` and `lastOpDate`: the next reconcile needs them to clear the
flag. The summary and conditions still count and name every VM, so nothing is hidden, only abbreviated.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from vmclock.engine.phases import HAS_DESIRED_TRACK

STATUS_BUDGET = 256 * 1024
_RESTART_KEYS = ("state", "lastOpDate")


def status_size(status: dict[str, Any]) -> int:
    return len(json.dumps(status, separators=(",", ":")))


def _keep_inventory(entry: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    inventory = entry.get("inventory") or {}
    kept = {k: inventory[k] for k in keys if k in inventory}
    out = {k: v for k, v in entry.items() if k != "inventory"}
    if kept:
        out["inventory"] = kept
    return out


def _slim(entry: dict[str, Any]) -> dict[str, Any]:
    extra = ("lastOpDate",) if entry.get("pendingRestart") else ()
    return _keep_inventory(entry, ("name", "state", "platform", *extra))


def _bare(entry: dict[str, Any]) -> dict[str, Any]:
    out = _keep_inventory(entry, _RESTART_KEYS if entry.get("pendingRestart") else ())
    out.pop("message", None)
    return out


def _minimal(entry: dict[str, Any]) -> dict[str, Any]:
    out = _bare(entry)
    if "error" in out:
        out["error"] = {"code": out["error"].get("code", "")}
    return out


Shrinker = Callable[[dict[str, Any]], dict[str, Any]]
_STAGES: tuple[tuple[Shrinker, bool], ...] = ((_slim, False), (_bare, False), (_minimal, True))


def bound_status(status: dict[str, Any], budget: int = STATUS_BUDGET) -> dict[str, Any]:
    for shrink, everyone in _STAGES:
        if status_size(status) <= budget:
            break
        status = {
            **status,
            "vms": [
                shrink(e) if everyone or e.get("phase") in HAS_DESIRED_TRACK else e
                for e in status.get("vms", [])
            ],
        }
    return status
