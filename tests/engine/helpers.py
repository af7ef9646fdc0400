"""Builders for engine tests: VM inventories, readings and previous-status entries in a line each."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from vmclock.engine.plan import Others, PolicyClaim, PreviousVm, VmReading
from vmclock.zstack.errors import ZStackError
from vmclock.zstack.models import Track, VmInventory

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
NOW_TEXT = "2026-05-01T12:00:00Z"
EARLIER_TEXT = "2026-04-30T08:00:00Z"


def uuid(n: int) -> str:
    return f"{n:032x}"


def inventory(
    n: int, *, state: str = "Running", platform: str = "Windows", last_op: str = "op-1"
) -> VmInventory:
    return VmInventory(uuid=uuid(n), name=f"vm-{n}", state=state, platform=platform, last_op_date=last_op)


def reading(n: int, track: Track | None = "host", **kwargs: Any) -> VmReading:
    return VmReading(inventory=inventory(n, **kwargs), track=track)


def failed_reading(code: str) -> VmReading:
    return VmReading(error=ZStackError.client(code, "boom"))


def previous(n: int, **kwargs: Any) -> PreviousVm:
    return PreviousVm(uuid=uuid(n), **kwargs)


def claim(
    name: str, track: Track, *uuids: int, created: str = "2026-01-01T00:00:00Z", ns: str = "ns"
) -> PolicyClaim:
    when = datetime.fromisoformat(created.replace("Z", "+00:00"))
    return PolicyClaim(ns, name, when, track, frozenset(uuid(n) for n in uuids))


def among(*claims: PolicyClaim) -> Others:
    """What the controller's index answers, over these claims: those touching the VMs asked about."""

    def touching(uuids: Collection[str]) -> list[PolicyClaim]:
        wanted = frozenset(uuids)
        return [c for c in claims if c.vm_uuids & wanted]

    return touching
