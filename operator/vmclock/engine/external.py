"""External: the engine's seam to ZStack. Observe, then apply; nothing else talks to a management node.

The engine types against `ClockTrackClient` (a slice of the client as a Protocol), so the dependency stays
one-way: the client knows nothing of policies. Observation is batched and shared between the policies of a
connection; apply runs the planned writes concurrently, each asked at the last moment whether it may still go.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from vmclock.engine.plan import VmReading, Write, WriteOutcome
from vmclock.zstack.errors import TIMEOUT, UNEXPECTED, MaySend, NotSent, ZStackError
from vmclock.zstack.models import Track, VmInventory
from vmclock.zstack.selection import Selector

# --- the client, as the engine sees it ----------------------------------------------------------------------
# The slice of the ZStack client the engine uses, as a Protocol.
#
# Typing the engine against this instead of `ZStackClient` keeps the dependency one-way (the client knows
# nothing of policies) and lets the engine be exercised against any object with these coroutines, such as
# the
# real client talking to the in-process simulator.


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


# --- observe before acting ----------------------------------------------------------------------------------
# Observe before acting: what ZStack says about each selected VM right now.
#
# Two batched reads (inventories, then tracks of the VMs that exist) instead of one request per VM. A failed
# batch marks every VM it covered with the same error; the planner then writes nothing for them, because a
# write without a fresh reading would be blind.


BULK_TRACKS_FROM = 500  # from this many VMs on, whole track listings cost fewer requests than UUID batches


MAX_READING_AGE = 300.0  # readings are only ever reused within a round; drop them long before they matter


BATCH_SECONDS = 120.0  # a shared batch outlives the reconcile that started it (shielded): bounded on its own


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
        self,
        clock: Callable[[], float] = time.monotonic,
        window: float = 0.02,
        bound: float = BATCH_SECONDS,
        on_read: Callable[[Mapping[str, VmReading]], None] = lambda readings: None,
    ) -> None:
        self._clock = clock
        self._on_read = on_read  # told each batch's readings (the controller puts drifted policies first)
        self._window = window
        self._bound = bound
        self._cache: dict[str, tuple[float, VmReading]] = {}
        self._invalidated: dict[str, float] = {}  # when a VM was last written: older readings are stale
        self._wanted: dict[str, float] = {}  # VM -> the newest `since` it was asked with
        self._next: asyncio.Future[None] | None = None
        self._running = asyncio.Lock()
        self.batches = 0

    def hint(self, uuids: Iterable[str]) -> None:
        """UUIDs that reconciles are about to ask for: read them in the next batch."""
        self._want(uuids, self._clock())

    async def read(
        self, client: ClockTrackClient, uuids: Sequence[str], since: float
    ) -> dict[str, VmReading]:
        missing = self._stale(uuids, since)
        while missing:
            self._want(missing, since)
            if self._next is None:
                self._next = asyncio.ensure_future(self._batch(client))
            await asyncio.shield(self._next)
            missing = self._stale(uuids, since)
        return {uuid: self._cache[uuid][1] for uuid in uuids}

    def invalidate(self, uuids: Iterable[str]) -> None:
        """Readings of VMs we just wrote are stale: the next request for them must read ZStack again, and a
        batch already on its way, taken before now, must not bring them back."""
        now = self._clock()
        for uuid in uuids:
            self._cache.pop(uuid, None)
            self._invalidated[uuid] = now

    def _want(self, uuids: Iterable[str], since: float) -> None:
        for uuid in uuids:
            self._wanted[uuid] = max(since, self._wanted.get(uuid, since))

    def _stale(self, uuids: Iterable[str], since: float) -> list[str]:
        return [u for u in uuids if (cached := self._cache.get(u)) is None or cached[0] < since]

    async def _batch(self, client: ClockTrackClient) -> None:
        async with self._running:
            await asyncio.sleep(self._window)  # let the other policies of this round join
            asked, self._wanted = self._wanted, {}
            self._next = None  # requests from now on go to the batch after this one
            # VMs asked for while the batch before this one was reading them: its readings may answer
            # every request for them already, and are not read again
            wanted = sorted(u for u, since in asked.items() if self._stale((u,), since))
            if not wanted:
                return
            taken = self._clock()
            try:
                async with asyncio.timeout(self._bound):
                    readings = await observe(client, wanted)
            except TimeoutError:
                error = ZStackError.client(TIMEOUT, f"the shared read did not finish in {self._bound:.0f}s")
                readings = {uuid: VmReading(error=error) for uuid in wanted}
            self._evict(taken - MAX_READING_AGE)
            self._cache.update(
                (uuid, (taken, reading))
                for uuid, reading in readings.items()
                if self._invalidated.get(uuid, taken) <= taken
            )
            self.batches += 1
            self._on_read(readings)

    def _evict(self, older_than: float) -> None:
        for uuid in [u for u, (taken, _) in self._cache.items() if taken < older_than]:
            del self._cache[uuid]
        for uuid in [u for u, written in self._invalidated.items() if written < older_than]:
            del self._invalidated[uuid]


# --- apply the planned writes -------------------------------------------------------------------------------
# Apply: run the planned writes concurrently, one outcome per VM.
#
# A pool of workers takes writes one by one, so the number of SetVmClockTrack jobs in flight is bounded
# (`MAX_JOBS_IN_FLIGHT`). Whether a write should still go is asked at the latest possible moment: by the
# transport, once an HTTP request slot of the connection is held and right before the submit leaves
# (design.md §5.3). So the jobs themselves can all run at once on the management node (ZStack runs them
# concurrently; its API workers only dispatch), while a newer generation, a deletion or the time bound still
# stops every submission that has not left. The management node never gets more than the connection's
# `maxConcurrentRequests` requests at a time.
#
# Each write's exception is captured into its own outcome: one VM's failure (or a bug hit by one VM) never
# cancels or hides the others. The reconcile's deadline bounds the whole apply: a job still running then is
# left running in ZStack and its VM stays Pending under the recorded intent; the next reconcile reads where
# it ended. Cancellation (operator shutdown) still propagates.

log = logging.getLogger(__name__)


PROGRESS_SECONDS = 3.0


MAX_JOBS_IN_FLIGHT = 1000  # coroutines waiting on jobs cost memory, not requests: bounded all the same


CUT_SHORT = (
    "not finished when the reconcile's time ran out (a submitted job runs on in ZStack); "
    "the next reconcile reads the outcome"
)


async def _write_one(client: ClockTrackClient, write: Write, may_send: MaySend) -> WriteOutcome:
    try:
        inventory = await client.set_clock_track(write.uuid, write.track, may_send=may_send)
    except NotSent:
        raise
    except Exception as exc:  # captured per VM; see module docstring
        return WriteOutcome(write, error=as_zstack_error(exc, "SetVmClockTrack"))
    return WriteOutcome(write, inventory=inventory)


@dataclass(frozen=True)
class Applied:
    outcomes: dict[str, WriteOutcome]
    unsent: dict[str, str]  # VM -> why its write was not submitted or not finished (left for the next one)
    cut_short: bool = False  # the deadline ended the apply: what is left is not a failure
    running: frozenset[str] = frozenset()  # submitted, and the wait for them was cut: they may still run


Progress = Callable[[Mapping[str, WriteOutcome]], Awaitable[None]]


async def apply_writes(
    client: ClockTrackClient,
    writes: Sequence[Write],
    *,
    concurrency: int = MAX_JOBS_IN_FLIGHT,
    stop: Callable[[], str | None] = lambda: None,
    progress: Progress | None = None,
    progress_every: float = PROGRESS_SECONDS,
    deadline: float | None = None,
) -> Applied:
    """Run `writes` with at most `concurrency` in flight; `stop()` is asked right before each submission
    leaves (see the module docstring) and ends the apply at its first answer.

    Writes already sent finish; the rest is reported as unsent with `stop()`'s reason. `deadline` (event
    loop time) cancels what still runs then: those VMs are unsent too, `cut_short`. `progress` is called
    every `progress_every` seconds with the outcomes so far; its failures are logged, not fatal (the intent
    record was saved before the first write, progress is only for people watching)."""
    outcomes: dict[str, WriteOutcome] = {}
    unsent: dict[str, str] = {}
    queue = iter(writes)
    stopped: list[str] = []
    submitted: set[str] = set()

    def may_send_for(uuid: str) -> MaySend:
        def may_send() -> str | None:
            if not stopped and (why := stop()) is not None:
                stopped.append(why)
            if not stopped:
                submitted.add(uuid)
            return stopped[0] if stopped else None

        return may_send

    async def worker() -> None:
        for write in queue:  # one shared iterator: each write is taken by exactly one worker
            if stopped:
                unsent[write.uuid] = stopped[0]
                continue
            try:
                outcomes[write.uuid] = await _write_one(client, write, may_send_for(write.uuid))
            except NotSent as withdrawn:
                unsent[write.uuid] = withdrawn.why

    async def report() -> None:
        while True:
            await asyncio.sleep(progress_every)
            if progress is not None:
                try:
                    await progress(dict(outcomes))
                except Exception:
                    log.warning("saving progress failed; the writes go on", exc_info=True)

    reporter = asyncio.create_task(report()) if progress is not None and writes else None
    cut_short = False
    try:
        async with asyncio.timeout_at(deadline):
            await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(writes))))))
    except TimeoutError:
        cut_short = True
        for write in writes:
            if write.uuid not in outcomes and write.uuid not in unsent:
                unsent[write.uuid] = CUT_SHORT
    finally:
        if reporter is not None:
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)
    running = frozenset(u for u in submitted if u not in outcomes) if cut_short else frozenset()
    return Applied(outcomes, unsent, cut_short, running)
