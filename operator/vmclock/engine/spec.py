"""Typed view of a VmClockPolicy: its spec and the bits of metadata the reconcile engine needs.

The CRD schema already enforces enums, patterns and bounds, but the engine parses again because a schema can
be missing (a CRD applied without validation, an older CRD version) and because a reconcile that trusted a
malformed spec would write to ZStack. Every rejection names the field and what it accepts, so the user can
fix the manifest from the condition message alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from vmclock.zstack.models import TRACKS, Track

GROUP = "vmclock.zstack.io"
VERSION = "v1alpha1"
POLICY_PLURAL = "vmclockpolicies"
CONNECTION_PLURAL = "zstackconnections"

PAUSED_ANNOTATION = f"{GROUP}/paused"
RECONCILE_REQUESTED_ANNOTATION = f"{GROUP}/reconcile-requested-at"

ManagementPolicy = Literal["Enforce", "Observe"]
DeletionPolicy = Literal["Orphan", "Restore"]
MANAGEMENT_POLICIES: tuple[str, ...] = ("Enforce", "Observe")
DELETION_POLICIES: tuple[str, ...] = ("Orphan", "Restore")

MAX_VMS = 1000
MIN_RESYNC_SECONDS = 10
MAX_RESYNC_SECONDS = 86400
DEFAULT_CONNECTION = "default"

_UUID = re.compile(r"^[0-9a-f]{32}$")
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class InvalidSpec(ValueError):
    """A spec the engine refuses to act on; `field` is the JSON path, the message says what is allowed."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


@dataclass(frozen=True)
class PolicySpec:
    track: Track
    vm_uuids: tuple[str, ...]
    connection_name: str = DEFAULT_CONNECTION
    management_policy: ManagementPolicy = "Enforce"
    deletion_policy: DeletionPolicy = "Orphan"
    resync_interval_seconds: int | None = None

    @property
    def enforce(self) -> bool:
        return self.management_policy == "Enforce"

    @property
    def restore(self) -> bool:
        return self.deletion_policy == "Restore"


def _enum(spec: Mapping[str, Any], key: str, allowed: tuple[str, ...], default: str | None) -> str:
    value = spec.get(key, default)
    if value not in allowed:
        raise InvalidSpec(f"spec.{key}", f"got {value!r}; allowed values: {', '.join(allowed)}")
    return cast(str, value)


def _vm_uuids(spec: Mapping[str, Any]) -> tuple[str, ...]:
    raw = spec.get("vmUuids")
    if not isinstance(raw, list) or not raw:
        raise InvalidSpec("spec.vmUuids", f"must be a non-empty list of 1..{MAX_VMS} VM UUIDs")
    if len(raw) > MAX_VMS:
        raise InvalidSpec("spec.vmUuids", f"has {len(raw)} items; at most {MAX_VMS} are allowed")
    seen: set[str] = set()
    for index, item in enumerate(raw):
        if not isinstance(item, str) or not _UUID.match(item):
            raise InvalidSpec(f"spec.vmUuids[{index}]", f"got {item!r}; expected 32 lowercase hex characters")
        if item in seen:
            raise InvalidSpec(f"spec.vmUuids[{index}]", f"{item} is listed twice; the list is a set")
        seen.add(item)
    return tuple(raw)


def _connection_name(spec: Mapping[str, Any]) -> str:
    ref = spec.get("connectionRef") or {}
    if not isinstance(ref, Mapping):
        raise InvalidSpec("spec.connectionRef", "must be an object with a 'name'")
    name = ref.get("name", DEFAULT_CONNECTION)
    if not isinstance(name, str) or not _DNS1123.match(name):
        raise InvalidSpec("spec.connectionRef.name", f"got {name!r}; expected a DNS-1123 object name")
    return name


def _resync(spec: Mapping[str, Any]) -> int | None:
    value = spec.get("resyncIntervalSeconds")
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not (MIN_RESYNC_SECONDS <= value <= MAX_RESYNC_SECONDS)
    ):
        raise InvalidSpec(
            "spec.resyncIntervalSeconds",
            f"got {value!r}; expected an integer from {MIN_RESYNC_SECONDS} to {MAX_RESYNC_SECONDS}",
        )
    return value


def parse_policy_spec(spec: Mapping[str, Any]) -> PolicySpec:
    """Validate and type a VmClockPolicy spec; raises InvalidSpec naming the first bad field."""
    parsed = PolicySpec(
        track=cast(Track, _enum(spec, "track", TRACKS, None)),
        vm_uuids=_vm_uuids(spec),
        connection_name=_connection_name(spec),
        management_policy=cast(
            ManagementPolicy, _enum(spec, "managementPolicy", MANAGEMENT_POLICIES, "Enforce")
        ),
        deletion_policy=cast(DeletionPolicy, _enum(spec, "deletionPolicy", DELETION_POLICIES, "Orphan")),
        resync_interval_seconds=_resync(spec),
    )
    if parsed.restore and not parsed.enforce:
        raise InvalidSpec(
            "spec.deletionPolicy",
            "Restore requires spec.managementPolicy Enforce (an Observe policy never changes a VM)",
        )
    return parsed


def is_paused(annotations: Mapping[str, str]) -> bool:
    """Only the word "true" in any letter case, with nothing around it, pauses: a typo never silently stops
    enforcement, and Argo CD's health Lua (which has no string library) can list the same 16 spellings."""
    return str(annotations.get(PAUSED_ANNOTATION, "")).lower() == "true"


def parse_timestamp(text: str) -> datetime:
    """Kubernetes timestamps are RFC 3339 in UTC with a trailing Z."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def format_timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
