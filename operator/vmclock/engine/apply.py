"""Apply: run the planned writes concurrently, one outcome per VM.

A pool of workers takes writes one by one, so the number of SetVmClockTrack jobs in flight is bounded
(`MAX_JOBS_IN_FLIGHT`). Whether a write should still go is asked at the latest possible moment: by the
transport, once an HTTP request slot of the connection is held and right before the submit leaves
(design.md §5.3). So the jobs themselves can all run at once on the management node (ZStack runs them
concurrently; its API workers only dispatch), while a newer generation, a deletion or the time bound still
stops every submission that has not left. The management node never gets more than the connection's
`maxConcurrentRequests` requests at a time.

Each write's exception is captured into its own outcome: one VM's failure (or a bug hit by one VM) never
cancels or hides the others. The reconcile's deadline bounds the whole apply: a job still running then is
left running in ZStack and its VM stays Pending under the recorded intent; the next reconcile reads where
it ended. Cancellation (operator shutdown) still propagates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from vmclock.engine.observation import as_zstack_error
from vmclock.engine.phases import Write
from vmclock.engine.ports import ClockTrackClient
from vmclock.zstack.errors import MaySend, NotSent, ZStackError
from vmclock.zstack.models import VmInventory

log = logging.getLogger(__name__)
PROGRESS_SECONDS = 3.0
MAX_JOBS_IN_FLIGHT = 1000  # coroutines waiting on jobs cost memory, not requests: bounded all the same
CUT_SHORT = (
    "not finished when the reconcile's time ran out (a submitted job runs on in ZStack); "
    "the next reconcile reads the outcome"
)


@dataclass(frozen=True)
class WriteOutcome:
    write: Write
    inventory: VmInventory | None = None  # what ZStack reported after a successful write
    error: ZStackError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


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

    def may_send() -> str | None:
        if not stopped and (why := stop()) is not None:
            stopped.append(why)
        return stopped[0] if stopped else None

    async def worker() -> None:
        for write in queue:  # one shared iterator: each write is taken by exactly one worker
            if stopped:
                unsent[write.uuid] = stopped[0]
                continue
            try:
                outcomes[write.uuid] = await _write_one(client, write, may_send)
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
    return Applied(outcomes, unsent, cut_short)
