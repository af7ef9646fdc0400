"""The client one reconcile leases: looked at again every few seconds for as long as it is in use.

A reconcile of 10,000 VMs can write for minutes on one lease. Taking the client once at its start would keep
using credentials that were rotated (a new Secret) or revoked (the Secret deleted, the endpoint no longer
allowed) since. So while a lease is held it looks at the connection every `FRESH_SECONDS` (the manager
re-reads the Secret then), and every call asks for the connection's client again (design.md §5.8).

Writes are all started at once and wait for a request slot, so a look taken when a write starts is not
enough: the submit is checked again right before it leaves (`may_send`). A rotated Secret gives a new
client: a write not yet sent moves to it, the old client is closed once its calls in flight end. A connection
that is no longer usable withdraws the writes not sent yet (NotSent: they stay Pending under their recorded
intent, and the next reconcile says why) and fails reads with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import TYPE_CHECKING, TypeVar

from vmclock.engine.reconcile import ConnectionUnavailable
from vmclock.zstack import ZStackClient
from vmclock.zstack.errors import MaySend, NotSent
from vmclock.zstack.models import Track, VmInventory
from vmclock.zstack.options import Endpoint
from vmclock.zstack.selection import Selector

if TYPE_CHECKING:
    from vmclock.connections.manager import ConnectionManager

T = TypeVar("T")
log = logging.getLogger(__name__)
FRESH_SECONDS = 5.0  # how often a lease in use looks at its connection (and the manager at its Secret)
_MOVED = "the connection's client was rebuilt"


class LeasedClient:
    """A `ClockTrackClient` bound to one connection for one lease; `current` is the client in use."""

    def __init__(self, manager: ConnectionManager, fetch: Callable[[], Awaitable[ZStackClient]]) -> None:
        self._manager = manager
        self._fetch = fetch
        self.current: ZStackClient | None = None
        self.problem: str | None = None  # why the connection is no longer usable, as of the last look
        self._watcher: asyncio.Task[None] | None = None
        self._released = False

    async def start(self) -> None:
        await self._use(await self._fetch())
        self._watcher = asyncio.create_task(self._watch(), name="vmclock-lease-watch")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(FRESH_SECONDS)
            try:
                client = await self._fetch()
            except ConnectionUnavailable as problem:
                self.problem = str(problem)
                continue
            except Exception:  # the look itself failed (the API server): keep going on what was known
                log.warning("looking at the connection again failed; the lease goes on", exc_info=True)
                continue
            self.problem = None
            if client is not self.current:
                await self._use(client)

    async def release(self) -> None:
        self._released = True
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        if self.current is not None:
            client, self.current = self.current, None
            await self._manager.release(client)

    @property
    def destination(self) -> str:
        assert self.current is not None
        return self.current.destination

    @property
    def endpoint(self) -> Endpoint:
        assert self.current is not None
        return self.current.endpoint

    async def _fresh(self) -> ZStackClient:
        client = await self._fetch()
        # After the lease ended (a shared read it started still running) a call holds its client only for
        # itself: the lease no longer keeps one, or a retired client would never be closed.
        if client is not self.current and not self._released:
            await self._use(client)
        return client

    async def _use(self, client: ZStackClient) -> None:
        self._manager.acquire(client)
        previous, self.current = self.current, client
        if previous is not None:
            await self._manager.release(previous)

    async def _call(self, call: Callable[[ZStackClient], Awaitable[T]]) -> T:
        client = await self._fresh()
        self._manager.acquire(client)  # held for the call: a swap meanwhile must not close it under us
        try:
            return await call(client)
        finally:
            await self._manager.release(client)

    async def get_vm_inventories(self, uuids: Sequence[str]) -> dict[str, VmInventory]:
        return await self._call(lambda c: c.get_vm_inventories(uuids))

    async def get_clock_tracks(
        self, uuids: Sequence[str], *, existing: Collection[str] | None = None
    ) -> dict[str, Track]:
        return await self._call(lambda c: c.get_clock_tracks(uuids, existing=existing))

    async def select_vms(self, selector: Selector) -> dict[str, VmInventory]:
        return await self._call(lambda c: c.select_vms(selector))

    async def get_clock_tracks_in_bulk(self, existing: Collection[str]) -> dict[str, Track]:
        return await self._call(lambda c: c.get_clock_tracks_in_bulk(existing))

    async def set_clock_track(
        self, uuid: str, track: Track, *, may_send: MaySend | None = None
    ) -> VmInventory:
        return await self._submit(lambda c: c.set_clock_track(uuid, track, may_send=self._guard(c, may_send)))

    async def reboot_vm(self, uuid: str, *, may_send: MaySend | None = None) -> VmInventory:
        return await self._submit(lambda c: c.reboot_vm(uuid, may_send=self._guard(c, may_send)))

    async def _submit(self, call: Callable[[ZStackClient], Awaitable[VmInventory]]) -> VmInventory:
        """A write that goes through the newest client: one withdrawn because the client was swapped
        under it (nothing was sent) goes again through the new one."""
        while True:
            try:
                return await self._call(call)
            except ConnectionUnavailable as problem:
                raise NotSent(f"not sent: {problem}") from None
            except NotSent as withdrawn:
                if withdrawn.why != _MOVED:
                    raise  # else: sent through the rebuilt client instead

    def _guard(self, client: ZStackClient, may_send: MaySend | None) -> MaySend:
        """What decides, right before a submit leaves through `client`, whether it may."""

        def check() -> str | None:
            if self.problem is not None:
                return f"not sent: {self.problem}"
            if client is not self.current:
                return _MOVED
            return may_send() if may_send is not None else None

        return check
