"""Turning ``examples/`` into manifests that work against the sandbox's simulator.

The examples are what a user copies, so the sandbox applies them as they are and changes only what cannot
be right on a fresh machine: the connection endpoint (the simulator's address, also in the Secret's
allowed-endpoints annotation) and the VM UUIDs (the
simulator's seeded fleet).  UUIDs are mapped one-to-one, so a UUID shared by two example policies stays
shared.  The choice of VMs makes every example become Ready and show something: Enforce policies get
Windows VMs (the only platform where ZStack uses the track) that still have the other track, so the
operator visibly writes; Observe policies get VMs that already match, since they never write.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness import SimVm

Obj = dict[str, Any]
WINDOWS_PLATFORMS = ("Windows", "WindowsVirtio")
ALLOWED_ENDPOINTS = "vmclock.zstack.io/allowed-endpoints"


def load(examples_dir: Path) -> list[Obj]:
    """The objects listed by ``examples/kustomization.yaml``, in its order."""
    kustomization = yaml.safe_load((examples_dir / "kustomization.yaml").read_text())
    objs: list[Obj] = []
    for resource in kustomization["resources"]:
        objs.extend(doc for doc in yaml.safe_load_all((examples_dir / resource).read_text()) if doc)
    return objs


@dataclass(frozen=True)
class Credentials:
    """What the example Secrets hold, so the simulator can be started to accept exactly that."""

    accounts: list[tuple[str, str]]
    access_keys: list[tuple[str, str]]


def credentials(objs: Iterable[Obj]) -> Credentials:
    accounts, access_keys = [], []
    for obj in objs:
        if obj["kind"] != "Secret":
            continue
        values = _secret_values(obj)
        if "accountName" in values and "password" in values:
            accounts.append((values["accountName"], values["password"]))
        if "accessKeyId" in values and "accessKeySecret" in values:
            access_keys.append((values["accessKeyId"], values["accessKeySecret"]))
    return Credentials(accounts, access_keys)


def _secret_values(secret: Obj) -> dict[str, str]:
    values = {key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()}
    values.update(secret.get("stringData") or {})
    return values


def rewrite(objs: Iterable[Obj], endpoint: str, fleet: list[SimVm]) -> list[Obj]:
    """Copies of ``objs``: connections pointed at ``endpoint``, policy VM UUIDs taken from ``fleet``."""
    picker = _Picker(fleet)
    result = []
    for original in objs:
        obj = copy.deepcopy(original)
        if obj["kind"] == "ZStackConnection":
            obj["spec"]["endpoint"] = endpoint
        elif obj["kind"] == "Secret":
            obj["metadata"].setdefault("annotations", {})[ALLOWED_ENDPOINTS] = endpoint
        elif obj["kind"] == "VmClockPolicy":
            spec = obj["spec"]
            prefer = _preferences(spec["track"], spec.get("managementPolicy", "Enforce"))
            spec["vmUuids"] = [picker.pick(uuid, prefer) for uuid in spec["vmUuids"]]
        result.append(obj)
    return result


def _preferences(track: str, management: str) -> list[Callable[[SimVm], bool]]:
    """Filters from most to least wanted; the last one accepts any VM."""
    if management == "Observe":
        return [
            lambda vm: vm.track == track and vm.platform == "Linux",
            lambda vm: vm.track == track,
            lambda vm: True,
        ]
    return [
        lambda vm: vm.track != track and vm.platform in WINDOWS_PLATFORMS,
        lambda vm: vm.platform in WINDOWS_PLATFORMS,
        lambda vm: True,
    ]


class _Picker:
    """Maps each example UUID to a distinct simulator VM, remembering the mapping."""

    def __init__(self, fleet: list[SimVm]) -> None:
        self.fleet = fleet
        self.mapping: dict[str, str] = {}

    def pick(self, example_uuid: str, prefer: list[Callable[[SimVm], bool]]) -> str:
        if example_uuid not in self.mapping:
            used = set(self.mapping.values())
            free = [vm for vm in self.fleet if vm.uuid not in used]
            for wanted in prefer:
                match = next((vm for vm in free if wanted(vm)), None)
                if match is not None:
                    self.mapping[example_uuid] = match.uuid
                    break
            else:
                raise ValueError("the simulator has fewer VMs than the examples reference")
        return self.mapping[example_uuid]
