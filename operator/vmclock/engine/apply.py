"""Apply: run the planned writes concurrently, one outcome per VM.

Concurrency is bounded by the client's own per-connection semaphore, so every write is started at once and
waits there. Each write's exception is captured into its own outcome: one VM's failure (or a bug hit by one
VM) never cancels or hides the others. Cancellation (operator shutdown) still propagates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from vmclock.engine.observation import as_zstack_error
from vmclock.engine.phases import Write
from vmclock.engine.ports import ClockTrackClient
from vmclock.zstack.errors import ZStackError
from vmclock.zstack.models import VmInventory


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


async def apply_writes(client: ClockTrackClient, writes: Sequence[Write]) -> dict[str, WriteOutcome]:
    outcomes = await asyncio.gather(*(_write_one(client, w) for w in writes))
    return {outcome.write.uuid: outcome for outcome in outcomes}
