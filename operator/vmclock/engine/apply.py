"""Apply: run the planned writes concurrently, one outcome per VM.

A pool of workers takes writes one by one, so the number of SetVmClockTrack jobs in flight is bounded and a
write is only submitted after asking whether it still should be (design.md §5.3). Each write's exception is
captured into its own outcome: one VM's failure (or a bug hit by one VM) never cancels or hides the others.
Cancellation (operator shutdown) still propagates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from vmclock.engine.observation import as_zstack_error
from vmclock.engine.phases import Write
from vmclock.engine.ports import ClockTrackClient
from vmclock.zstack.errors import ZStackError
from vmclock.zstack.models import VmInventory

log = logging.getLogger(__name__)
PROGRESS_SECONDS = 3.0


@dataclass(frozen=True)
class WriteOutcome:
    write: Write
    inventory: VmInventory | None = None  # what ZStack reported after a successful write
    error: ZStackError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


async def _write_one(client: ClockTrackClient, write: Write) -> WriteOutcome:
    try:
        inventory = await client.set_clock_track(write.uuid, write.track)
    except Exception as exc:  # captured per VM; see module docstring
        return WriteOutcome(write, error=as_zstack_error(exc, "SetVmClockTrack"))
    return WriteOutcome(write, inventory=inventory)


@dataclass(frozen=True)
class Applied:
    outcomes: dict[str, WriteOutcome]
    unsent: dict[str, str]  # VM -> why its write was not submitted (left for the next reconcile)


Progress = Callable[[Mapping[str, WriteOutcome]], Awaitable[None]]


async def apply_writes(
    client: ClockTrackClient,
    writes: Sequence[Write],
    *,
    concurrency: int = 32,
    stop: Callable[[], str | None] = lambda: None,
    progress: Progress | None = None,
    progress_every: float = PROGRESS_SECONDS,
) -> Applied:
    """Run `writes` with at most `concurrency` in flight; `stop()` is asked before each submission.

    Asking right before each submission (not once up front) is what lets a newer generation or the time
    bound cut a long apply short: writes already sent finish, the rest is reported as unsent. `progress` is
    called every `progress_every` seconds with the outcomes so far; its failures are logged, not fatal (the
    intent record was saved before the first write, progress is only for people watching)."""
    outcomes: dict[str, WriteOutcome] = {}
    unsent: dict[str, str] = {}
    queue = iter(writes)

    async def worker() -> None:
        for write in queue:  # one shared iterator: each write is taken by exactly one worker
            why = stop()
            if why is not None:
                unsent[write.uuid] = why
                continue
            outcomes[write.uuid] = await _write_one(client, write)

    async def report() -> None:
        while True:
            await asyncio.sleep(progress_every)
            if progress is not None:
                try:
                    await progress(dict(outcomes))
                except Exception:
                    log.warning("saving progress failed; the writes go on", exc_info=True)

    reporter = asyncio.create_task(report()) if progress is not None and writes else None
    try:
        await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(writes))))))
    finally:
        if reporter is not None:
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)
    return Applied(outcomes, unsent)
