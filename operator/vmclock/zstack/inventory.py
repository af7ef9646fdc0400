"""Which VMs exist, and their inventories: `QueryVmInstance` with batched `uuid?=` lists.

A VM that does not exist is simply absent from the answer (ZStack returns an empty list, not an error, for
unknown uuids in a query: zstack-api.md §4).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vmclock.zstack.calls import Api
from vmclock.zstack.errors import GARBAGE, ZStackError
from vmclock.zstack.listing import Listing, query_any_of
from vmclock.zstack.models import VM_UUID_RE, VmInventory
from vmclock.zstack.query import Shape

QUERY_VM = "QueryVmInstance"
# Only the fields VmInventory keeps: a page of 1000 rows is ~0.45 MB instead of ~2.7 MB with NICs and volumes.
VMS = Listing(
    QUERY_VM, "/v1/vm-instances", Shape(sort="uuid", fields=VmInventory.ZSTACK_FIELDS), unique="uuid"
)
VM_UUIDS = Listing(QUERY_VM, "/v1/vm-instances", Shape(sort="uuid", fields=("uuid",)), unique="uuid")


def row_text(row: dict[str, Any], key: str, operation: str) -> str:
    """A required string field of a reply row; anything else means the reply is not what ZStack sends."""
    value = row.get(key)
    if not isinstance(value, str) or not value:
        raise ZStackError.client(GARBAGE, f"reply row without a {key} string", operation=operation)
    return value


def parse_inventory(data: Any, operation: str) -> VmInventory:
    if not isinstance(data, dict):
        raise ZStackError.client(GARBAGE, "reply without a VM inventory object", operation=operation)
    if not VM_UUID_RE.match(row_text(data, "uuid", operation)):
        # Status lists VMs by uuid under the CRD's pattern: a row that breaks it would get the whole status
        # rejected (422) after the writes were made, so it is refused here, as garbage.
        raise ZStackError.client(GARBAGE, "VM uuid is not 32 lowercase hex characters", operation=operation)
    try:
        return VmInventory.from_json(data)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ZStackError.client(
            GARBAGE, "malformed VM inventory", type(exc).__name__, operation=operation
        ) from exc


async def vm_inventories(api: Api, uuids: Sequence[str], *, page_size: int) -> dict[str, VmInventory]:
    rows = await query_any_of(api, VMS, [], "uuid", uuids, page_size=page_size)
    wanted = set(uuids)
    found = (parse_inventory(row, QUERY_VM) for row in rows)
    return {inv.uuid: inv for inv in found if inv.uuid in wanted}


async def existing_vms(api: Api, uuids: Sequence[str], *, page_size: int) -> set[str]:
    """The subset of `uuids` ZStack knows, fetching only the uuid field."""
    rows = await query_any_of(api, VM_UUIDS, [], "uuid", uuids, page_size=page_size)
    return {row_text(row, "uuid", QUERY_VM) for row in rows} & set(uuids)
