"""The slice of the ZStack client the engine uses, as a Protocol.

Typing the engine against this instead of `ZStackClient` keeps the dependency one-way (the client knows
nothing of policies) and lets the engine be exercised against any object with these coroutines, such as the
real client talking to the in-process simulator.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from vmclock.zstack.errors import MaySend
from vmclock.zstack.models import Track, VmInventory
from vmclock.zstack.selection import Selector


class ClockTrackClient(Protocol):
    @property
    def destination(self) -> str:
        """The management node and account changes are made through (names, no secrets)."""
        ...

    async def get_vm_inventories(self, uuids: Sequence[str]) -> dict[str, VmInventory]:
        """Inventories of the VMs that exist; a VM missing from the answer does not exist."""
        ...

    async def get_clock_tracks(
        self, uuids: Sequence[str], *, existing: Collection[str] | None = None
    ) -> dict[str, Track]:
        """Effective clock track of each existing VM; `existing` saves the client its existence query."""
        ...

    async def select_vms(self, selector: Selector) -> dict[str, VmInventory]:
        """Inventories of the VMs a selector picks now (paged queries; ValueError for an unsafe value)."""
        ...

    async def get_clock_tracks_in_bulk(self, existing: Collection[str]) -> dict[str, Track]:
        """Effective tracks of many existing VMs from whole listings (cheaper than UUID batches)."""
        ...

    async def set_clock_track(
        self, uuid: str, track: Track, *, may_send: MaySend | None = None
    ) -> VmInventory:
        """Write one VM's track (an async ZStack job); returns the inventory ZStack reports afterwards.
        `may_send` is asked right before each submit leaves; NotSent when it withdrew it."""
        ...
