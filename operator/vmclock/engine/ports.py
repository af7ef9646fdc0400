"""The slice of the ZStack client the engine uses, as a Protocol.

Typing the engine against this instead of `ZStackClient` keeps the dependency one-way (the client knows
nothing of policies) and lets the engine be exercised against any object with these coroutines, such as the
real client talking to the in-process simulator.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from vmclock.zstack.models import Track, VmInventory


class ClockTrackClient(Protocol):
    async def get_vm_inventories(self, uuids: Sequence[str]) -> dict[str, VmInventory]:
        """Inventories of the VMs that exist; a VM missing from the answer does not exist."""
        ...

    async def get_clock_tracks(
        self, uuids: Sequence[str], *, existing: Collection[str] | None = None
    ) -> dict[str, Track]:
        """Effective clock track of each existing VM; `existing` saves the client its existence query."""
        ...

    async def set_clock_track(self, uuid: str, track: Track) -> VmInventory:
        """Write one VM's track (an async ZStack job); returns the inventory ZStack reports afterwards."""
        ...
