"""Which VMs a selector picks: ZStack query conditions for the bulk of the work, exact checks for the rest.

A selector's fields AND together and the values inside one field OR together, which is exactly how ZStack
combines `q=` conditions and the items of one `?=` list, so platforms, zones, clusters and user tags are
answered by ZStack itself (`platform?=`, `zoneUuid?=`, `clusterUuid?=`, one `__userTag__=` per tag).

Values travel into ZQL as single-quoted strings that MySQL reads with backslash escapes, so a `'` breaks the
query and a `\\` changes it: user tags carrying either are refused here (the CRD rejects them too).

Two parts are settled here, in Python, on the rows ZStack returns:
- The name glob. `*` and `?` become LIKE's `%` and `_`. A literal `%`, `_`, `\\` or `'` in the glob has no
  escape that survives every layer (REST parser, ZQL quoting, MySQL's escapes and SQL mode), and `_` is common
  in VM names, so rejecting such globs would be user-hostile. Each of them is sent as `_` (any one
  character), which makes the LIKE a superset of the glob; the glob is then matched exactly. Matching ignores
  case, as ZStack's database collation does for the LIKE itself.
- Exclusions. `uuid!?=` is sent when it fits in the request line together with everything else; either way
  the excluded UUIDs are dropped from the answer, so a long exclusion list costs bytes, never correctness.

The longest `?=` list is the one split across requests when the conditions would not fit in 8 KiB: its
batches select disjoint VMs (a VM has one platform, zone and cluster), so their union is the selection.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from vmclock.zstack.calls import Api
from vmclock.zstack.inventory import QUERY_VM, VMS, parse_inventory
from vmclock.zstack.listing import query_all, query_any_of
from vmclock.zstack.models import VmInventory
from vmclock.zstack.options import MAX_REQUEST_LINE
from vmclock.zstack.query import Condition, Page, any_of, encode_query, eq

# ZStack's ImagePlatform values (VmInstanceInventory.platform).
PLATFORMS: tuple[str, ...] = ("Windows", "WindowsVirtio", "Linux", "Paravirtualization", "Other")

# The largest selector the CRD admits. With every list and text at its bound and every character a 3-byte
# UTF-8 one (9 bytes once percent-encoded), the conditions sent on every request still leave room in 8 KiB
# for the longest `?=` list to be split into batches (tests/zstack/test_selection.py measures it).
MAX_ZONE_UUIDS = 32
MAX_CLUSTER_UUIDS = 128
MAX_NAME_PATTERN = 128
MAX_USER_TAGS = 8
MAX_USER_TAG_LENGTH = 64
MAX_EXCLUDED_VMS = 1000


_LIKE_WILDCARDS = {"*": "%", "?": "_"}
_LIKE_UNSAFE = frozenset("%_\\'")  # LIKE metacharacters, MySQL's escape character, ZQL's quote
_TAG_UNSAFE = frozenset("\\'")


@dataclass(frozen=True)
class Selector:
    """VMs by what they are. Empty fields do not constrain; at least one of the selecting fields (all but
    `exclude_vm_uuids`) must be set, because an empty selector would silently mean every VM."""

    platforms: tuple[str, ...] = ()
    zone_uuids: tuple[str, ...] = ()
    cluster_uuids: tuple[str, ...] = ()
    name_pattern: str | None = None
    user_tags: tuple[str, ...] = ()
    exclude_vm_uuids: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        selecting = (self.platforms, self.zone_uuids, self.cluster_uuids, self.name_pattern, self.user_tags)
        if not any(selecting):
            raise ValueError(
                "a selector needs at least one of platforms, zoneUuids, clusterUuids, namePattern, userTags"
            )


def like_pattern(glob: str) -> str:
    """The LIKE pattern ZStack gets for `glob`: a superset of it (see the module docstring)."""
    return "".join(_LIKE_WILDCARDS.get(ch, "_" if ch in _LIKE_UNSAFE else ch) for ch in glob)


def glob_matcher(glob: str) -> re.Pattern[str]:
    """`*` any run, `?` one character, everything else literal; compare with `fullmatch`."""
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in glob)
    return re.compile(regex, re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class SelectionQuery:
    """A selector as requests: `conditions` go on every request, `spread` is the `?=` list that may be split
    across requests, and `exclusions` are the UUIDs that must still be dropped from what comes back."""

    conditions: tuple[Condition, ...]
    spread: tuple[str, tuple[str, ...]] | None
    exclusions: frozenset[str]
    name: re.Pattern[str] | None


def _fits(api: Api, conditions: Sequence[Condition], page_size: int) -> bool:
    query = encode_query(conditions, page=Page.widest(page_size), shape=VMS.shape)
    return api.endpoint.request_line_length("GET", VMS.path, query) <= MAX_REQUEST_LINE


def plan_selection(api: Api, selector: Selector, *, page_size: int) -> SelectionQuery:
    """Translate `selector`; raises ValueError for a value ZStack's query parser would misread."""
    lists = [
        (key, values)
        for key, values in (
            ("platform", selector.platforms),
            ("zoneUuid", selector.zone_uuids),
            ("clusterUuid", selector.cluster_uuids),
        )
        if values
    ]
    lists.sort(key=lambda item: len(",".join(item[1])))
    spread = lists.pop() if lists else None
    conditions = [any_of(key, values) for key, values in lists]
    if selector.name_pattern is not None:
        conditions.append(Condition("name", "~=", like_pattern(selector.name_pattern)))
    for tag in selector.user_tags:
        if _TAG_UNSAFE & set(tag):
            raise ValueError(
                f"query field '__userTag__': {tag!r} has a quote or backslash that ZQL would misread"
            )
        conditions.append(eq("__userTag__", tag))
    if selector.exclude_vm_uuids:
        excluded = Condition("uuid", "!?=", ",".join(sorted(selector.exclude_vm_uuids)))
        whole = [*conditions, excluded, *([any_of(*spread)] if spread else [])]
        if _fits(api, whole, page_size):
            conditions.append(excluded)
    if spread is None and not _fits(api, conditions, page_size):
        raise ValueError("the selector's conditions do not fit in one 8 KiB ZStack request line")
    name = glob_matcher(selector.name_pattern) if selector.name_pattern is not None else None
    return SelectionQuery(tuple(conditions), spread, selector.exclude_vm_uuids, name)


async def selected_vms(api: Api, selector: Selector, *, page_size: int) -> dict[str, VmInventory]:
    """Inventories of the VMs `selector` picks now, keyed by UUID."""
    plan = plan_selection(api, selector, page_size=page_size)
    if plan.spread is None:
        rows = await query_all(api, VMS, plan.conditions, page_size=page_size)
    else:
        key, values = plan.spread
        rows = await query_any_of(api, VMS, plan.conditions, key, values, page_size=page_size)
    found = (parse_inventory(row, QUERY_VM) for row in rows)
    return {
        vm.uuid: vm
        for vm in found
        if vm.uuid not in plan.exclusions and (plan.name is None or plan.name.fullmatch(vm.name))
    }
