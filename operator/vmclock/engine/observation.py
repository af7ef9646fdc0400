"""Observe before acting: what ZStack says about each selected VM right now.

Two batched reads (inventories, then tracks of the VMs that exist) instead of one request per VM. A failed
batch marks every VM it covered with the same error; the planner then writes nothing for them, because a
write without a fresh reading would be blind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vmclock.engine.ports import ClockTrackClient
from vmclock.zstack.errors import ZStackError
from vmclock.zstack.models import Track, VmInventory

UNEXPECTED = "CLIENT.UNEXPECTED"


@dataclass(frozen=True)
class VmReading:
    """One VM as observed: found with a track, not found, or unreadable (error)."""

    inventory: VmInventory | None = None
    track: Track | None = None
    error: ZStackError | None = None

    @property
    def found(self) -> bool:
        return self.inventory is not None


def as_zstack_error(exc: Exception, operation: str) -> ZStackError:
    """Any failure becomes a ZStackError so status and events have one shape; the text keeps only the type
    and message of the exception, which our own code never fills with secrets."""
    if isinstance(exc, ZStackError):
        return exc
    return ZStackError.client(UNEXPECTED, f"{type(exc).__name__}: {exc}"[:256], operation=operation)


async def observe(client: ClockTrackClient, uuids: Sequence[str]) -> dict[str, VmReading]:
    if not uuids:
        return {}
    try:
        inventories = await client.get_vm_inventories(list(uuids))
    except Exception as exc:  # one reading per VM carries the failure
        error = as_zstack_error(exc, "QueryVmInstance")
        return {uuid: VmReading(error=error) for uuid in uuids}
    found = [uuid for uuid in uuids if uuid in inventories]
    tracks: dict[str, Track] = {}
    track_error: ZStackError | None = None
    if found:
        try:
            tracks = await client.get_clock_tracks(found, existing=found)
        except Exception as exc:
            track_error = as_zstack_error(exc, "GetClockTrack")
    readings: dict[str, VmReading] = {}
    for uuid in uuids:
        inventory = inventories.get(uuid)
        if inventory is None:
            readings[uuid] = VmReading()
        elif uuid in tracks:
            readings[uuid] = VmReading(inventory=inventory, track=tracks[uuid])
        else:
            error = track_error or ZStackError.client(
                UNEXPECTED, "ZStack returned no clock track for this VM"
            )
            readings[uuid] = VmReading(inventory=inventory, error=error)
    return readings
