"""Typed view of a VmClockPolicy: its spec and the bits of metadata the reconcile engine needs.

The CRD schema already enforces enums, patterns and bounds, but the engine parses again because a schema can
be missing (a CRD applied without validation, an older CRD version) and because a reconcile that trusted a
malformed spec would write to ZStack. Every rejection names the field and what it accepts, so the user can
fix the manifest from the condition message alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from vmclock.zstack.models import TRACKS, Track
from vmclock.zstack.selection import (
    MAX_CLUSTER_UUIDS,
    MAX_EXCLUDED_VMS,
    MAX_NAME_PATTERN,
    MAX_USER_TAG_LENGTH,
    MAX_USER_TAGS,
    MAX_ZONE_UUIDS,
    PLATFORMS,
    Selector,
)

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
# What ZStack's REST query parser would read as (part of) an operator or a list separator (zstack-api.md §6),
# what breaks or changes the single-quoted ZQL/MySQL string a value becomes (' and \), and control
# characters; the CRD's CEL rule rejects the same set.
_QUERY_UNSAFE = re.compile(r"[=<>,'\\\x00-\x1f\x7f-\x9f]")
_SELECTOR_FIELDS = ("platforms", "zoneUuids", "clusterUuids", "namePattern", "userTags", "excludeVmUuids")
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class InvalidSpec(ValueError):
    """A spec the engine refuses to act on; `field` is the JSON path, the message says what is allowed."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


@dataclass(frozen=True)
class PolicySpec:
    """Exactly one of `vm_uuids` (non-empty) and `selector` says which VMs the policy is about."""

    track: Track
    vm_uuids: tuple[str, ...] = ()
    connection_name: str = DEFAULT_CONNECTION
    management_policy: ManagementPolicy = "Enforce"
    deletion_policy: DeletionPolicy = "Orphan"
    resync_interval_seconds: int | None = None
    selector: Selector | None = None

    def __post_init__(self) -> None:
        if bool(self.vm_uuids) == (self.selector is not None):
            raise ValueError("a PolicySpec has exactly one of vm_uuids (non-empty) and selector")

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


Check = Callable[[str, Any], str]


def _string_set(raw: Any, field: str, limit: int, check: Check) -> tuple[str, ...]:
    """A list of 1..limit distinct strings, each passed through `check(item_field, item)`."""
    if not isinstance(raw, list) or not raw:
        raise InvalidSpec(field, f"must be a non-empty list of at most {limit} items")
    if len(raw) > limit:
        raise InvalidSpec(field, f"has {len(raw)} items; at most {limit} are allowed")
    seen: set[str] = set()
    for index, item in enumerate(raw):
        value = check(f"{field}[{index}]", item)
        if value in seen:
            raise InvalidSpec(f"{field}[{index}]", f"{value} is listed twice; the list is a set")
        seen.add(value)
    return tuple(raw)


def _uuid(field: str, item: Any) -> str:
    if not isinstance(item, str) or not _UUID.match(item):
        raise InvalidSpec(field, f"got {item!r}; expected 32 lowercase hex characters")
    return item


def _platform(field: str, item: Any) -> str:
    if item not in PLATFORMS:
        raise InvalidSpec(field, f"got {item!r}; allowed values: {', '.join(PLATFORMS)}")
    return cast(str, item)


_QUERY_TEXT_RULE = (
    "must not contain =, <, >, commas, quotes ('), backslashes or control characters: ZStack's query "
    "parser would read them as operators, separators or escapes"
)


def _query_text(field: str, item: Any, limit: int) -> str:
    """Text that goes into a ZStack query condition unchanged, so it must not contain what its parser
    would read as an operator or separator."""
    if not isinstance(item, str) or not 1 <= len(item) <= limit:
        raise InvalidSpec(field, f"got {item!r}; expected a string of 1 to {limit} characters")
    if _QUERY_UNSAFE.search(item):
        raise InvalidSpec(
            field,
            f"got {item!r}; {_QUERY_TEXT_RULE}",
        )
    return item


def _user_tag(field: str, item: Any) -> str:
    return _query_text(field, item, MAX_USER_TAG_LENGTH)


# Each selector list: its bound and the check of one item.
_SELECTOR_LISTS: dict[str, tuple[int, Check]] = {
    "platforms": (len(PLATFORMS), _platform),
    "zoneUuids": (MAX_ZONE_UUIDS, _uuid),
    "clusterUuids": (MAX_CLUSTER_UUIDS, _uuid),
    "userTags": (MAX_USER_TAGS, _user_tag),
    "excludeVmUuids": (MAX_EXCLUDED_VMS, _uuid),
}


def object_of(raw: Any, field: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    """`raw` as an object of only `allowed` fields (a schema-less CRD would keep a typo silently)."""
    if not isinstance(raw, Mapping):
        raise InvalidSpec(field, f"must be an object with some of: {', '.join(allowed)}")
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise InvalidSpec(f"{field}.{unknown[0]}", f"unknown field; allowed fields: {', '.join(allowed)}")
    return raw


def _selector(raw: Any) -> Selector:
    raw = object_of(raw, "spec.selector", _SELECTOR_FIELDS)
    lists = {
        key: _string_set(raw[key], f"spec.selector.{key}", limit, check) if key in raw else ()
        for key, (limit, check) in _SELECTOR_LISTS.items()
    }
    pattern = raw.get("namePattern")
    if pattern is not None:
        _query_text("spec.selector.namePattern", pattern, MAX_NAME_PATTERN)
    if not (pattern or any(lists[key] for key in ("platforms", "zoneUuids", "clusterUuids", "userTags"))):
        raise InvalidSpec(
            "spec.selector",
            "needs at least one of platforms, zoneUuids, clusterUuids, namePattern, userTags "
            "(excludeVmUuids alone selects nothing)",
        )
    return Selector(
        platforms=lists["platforms"],
        zone_uuids=lists["zoneUuids"],
        cluster_uuids=lists["clusterUuids"],
        name_pattern=pattern,
        user_tags=lists["userTags"],
        exclude_vm_uuids=frozenset(lists["excludeVmUuids"]),
    )


def _targets(spec: Mapping[str, Any]) -> tuple[tuple[str, ...], Selector | None]:
    """Exactly one of vmUuids and selector (a null counts as absent, as in a merge patch)."""
    has_uuids, has_selector = spec.get("vmUuids") is not None, spec.get("selector") is not None
    if has_uuids and has_selector:
        raise InvalidSpec("spec.selector", "cannot be combined with spec.vmUuids; set exactly one of them")
    if has_selector:
        return (), _selector(spec["selector"])
    if not has_uuids:
        raise InvalidSpec(
            "spec.vmUuids", "set exactly one of spec.vmUuids (VM UUIDs) and spec.selector (VMs by attributes)"
        )
    return _string_set(spec["vmUuids"], "spec.vmUuids", MAX_VMS, _uuid), None


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
    track = cast(Track, _enum(spec, "track", TRACKS, None))
    vm_uuids, selector = _targets(spec)
    parsed = PolicySpec(
        track=track,
        vm_uuids=vm_uuids,
        connection_name=_connection_name(spec),
        management_policy=cast(
            ManagementPolicy, _enum(spec, "managementPolicy", MANAGEMENT_POLICIES, "Enforce")
        ),
        deletion_policy=cast(DeletionPolicy, _enum(spec, "deletionPolicy", DELETION_POLICIES, "Orphan")),
        resync_interval_seconds=_resync(spec),
        selector=selector,
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
