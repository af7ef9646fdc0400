"""Observe before acting: what ZStack says about each selected VM right now.

Two batched reads (inventories, then tracks of the VMs that exist) instead of one request per VM. A failed
batch marks every VM it covered with the same error; the planner then writes nothing for them, because a
write without a fresh reading would be blind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from vmclock.engine.ports import ClockTrackClient
from vmclock.zstack.errors import TIMEOUT, ZStackError
from vmclock.zstack.models import Track, VmInventory
from vmclock.zstack.selection import Selector

UNEXPECTED = "CLIENT.UNEXPECTED"
BULK_TRACKS_FROM = 500  # from this many VMs on, whole track listings cost fewer requests than UUID batches
MAX_READING_AGE = 300.0  # readings are only ever reused within a round; drop them long before they matter
BATCH_SECONDS = 120.0  # a shared batch outlives the reconcile that started it (shielded): bounded on its own


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
    return await _with_tracks(client, uuids, inventories, bulk=False)


async def observe_selection(client: ClockTrackClient, selector: Selector) -> dict[str, VmReading]:
    """The VMs a selector picks now, each with its track. Unlike `observe`, a failed selection raises:
    without it the policy does not know which VMs it is about, so nothing may be planned. A large
    selection reads the tracks as whole listings (`get_clock_tracks_in_bulk`)."""
    inventories = await client.select_vms(selector)
    uuids = sorted(inventories)
    return await _with_tracks(client, uuids, inventories, bulk=len(uuids) >= BULK_TRACKS_FROM)


async def _with_tracks(
    client: ClockTrackClient, uuids: Sequence[str], inventories: Mapping[str, VmInventory], *, bulk: bool
) -> dict[str, VmReading]:
    """Readings of `uuids` given their inventories (absent: not found); a failed track read marks each
    found VM with that error."""
    found = [uuid for uuid in uuids if uuid in inventories]
    tracks: dict[str, Track] = {}
    track_error: ZStackError | None = None
    if found:
        try:
            if bulk:
                tracks = await client.get_clock_tracks_in_bulk(found)
            else:
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


class SharedObserver:
    """Observation shared by the policies of one connection (design.md §5.5).

    Policies that are due together ask for their VMs within moments of each other; each asking on its own
    would cost one batched set of queries per policy. Here requests join the next batch, which reads the
    union of every UUID asked for (plus the UUIDs the resync round announced with `hint`), so ZStack reads
    grow with distinct VMs, not with the number of policies. A reading answers a request only when it was
    taken after the request was made (`since`): a reconcile never acts on an observation older than the
    event that asked for it. Batches of one connection run one after another.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, window: float = 0.02, bound: float = BATCH_SECONDS
    ) -> None:
        self._clock = clock
        self._window = window
        self._bound = bound
        self._cache: dict[str, tuple[float, VmReading]] = {}
        self._wanted: set[str] = set()
        self._next: asyncio.Future[None] | None = None
        self._running = asyncio.Lock()
        self.batches = 0

    def hint(self, uuids: Iterable[str]) -> None:
        """UUIDs that reconciles are about to ask for: read them in the next batch."""
        self._wanted.update(uuids)

    async def read(
        self, client: ClockTrackClient, uuids: Sequence[str], since: float
    ) -> dict[str, VmReading]:
        missing = self._stale(uuids, since)
        while missing:
            self._wanted.update(missing)
            if self._next is None:
                self._next = asyncio.ensure_future(self._batch(client))
            await asyncio.shield(self._next)
            missing = self._stale(uuids, since)
        return {uuid: self._cache[uuid][1] for uuid in uuids}

    def invalidate(self, uuids: Iterable[str]) -> None:
        """Readings of VMs we just wrote are stale: the next request for them must read ZStack again."""
        for uuid in uuids:
            self._cache.pop(uuid, None)

    def _stale(self, uuids: Iterable[str], since: float) -> list[str]:
        return [u for u in uuids if (cached := self._cache.get(u)) is None or cached[0] < since]

    async def _batch(self, client: ClockTrackClient) -> None:
        async with self._running:
            await asyncio.sleep(self._window)  # let the other policies of this round join
            wanted, self._wanted = sorted(self._wanted), set()
            self._next = None  # requests from now on go to the batch after this one
            taken = self._clock()
            try:
                async with asyncio.timeout(self._bound):
                    readings = await observe(client, wanted)
            except TimeoutError:
                error = ZStackError.client(TIMEOUT, f"the shared read did not finish in {self._bound:.0f}s")
                readings = {uuid: VmReading(error=error) for uuid in wanted}
            self._evict(taken - MAX_READING_AGE)
            self._cache.update((uuid, (taken, reading)) for uuid, reading in readings.items())
            self.batches += 1

    def _evict(self, older_than: float) -> None:
        for uuid in [u for u, (taken, _) in self._cache.items() if taken < older_than]:
            del self._cache[uuid]
