"""Where a reconcile gets its ZStackConnection, and the check that it still holds before ZStack is written.

The index (connectionindex.py) may lag the API server by a watch event: a connection re-created with another
endpoint, an endpoint changed, a deletion begun. Acting on such an answer would write the wrong ZStack, so
what the index says is only a decision aid: before a reconcile's first ZStack write the connection is read
from the API server and compared with what the reconcile used (`confirm`); a difference raises `Stale`
(the worker looks again at once) with nothing written yet. A reconcile that only reads ZStack, the in-sync
resync of 1,000 small policies, makes no GET.

The GET that found the index behind is kept as the newer answer for that connection until the watch delivers
any new event of it, so the reconcile right after the `Stale` uses the API server's answer instead of the
index that has not caught up (no hot loop of Stale reconciles while the watch is behind).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from vmclock.engine.spec import CONNECTION_PLURAL
from vmclock.kopfapp.connectionindex import (
    ConnectionIndex,
    IndexedConnection,
    connection_entry,
    known_connection,
)
from vmclock.kubeapi import KubeApi, Stale
from vmclock.refs import Ref


@dataclass
class FoundConnection:
    """The connection one reconcile uses; `confirmed`: the API server said so during this reconcile."""

    ref: Ref
    connection: IndexedConnection | None
    confirmed: bool

    def spec(self, *, for_restore: bool) -> Mapping[str, Any] | None:
        """None when it does not exist, or is being deleted and the spec is not for a restore (such a
        connection waits only for the restores that need it)."""
        connection = self.connection
        if connection is None or (connection.deleting and not for_restore):
            return None
        return connection.spec


@dataclass(frozen=True)
class _Answer:
    connection: IndexedConnection | None  # None: the API server has no such connection


class ConnectionSource:
    def __init__(self, kube: KubeApi) -> None:
        self._kube = kube
        self._index: ConnectionIndex | None = None
        self._newer: dict[Ref, _Answer] = {}  # a GET's answer the index had not caught up with
        self._events: Counter[Ref] = Counter()  # watch events delivered, per connection

    def bind(self, index: ConnectionIndex) -> None:
        self._index = index

    def indexed(self, body: Mapping[str, Any]) -> dict[Ref, IndexedConnection]:
        """kopf's indexing handler: the entry; a newer answer kept for it is no longer newer than the
        index."""
        entries = connection_entry(body)
        for ref in entries:
            self._events[ref] += 1
            self._newer.pop(ref, None)
        return entries

    async def find(self, ref: Ref) -> FoundConnection:
        """The newer answer, else the index's, else (the index does not know it, or knows two) a GET."""
        newer = self._newer.get(ref)
        if newer is not None:
            return FoundConnection(ref, newer.connection, confirmed=False)
        known = known_connection(self._index, ref)
        if known is not None:
            return FoundConnection(ref, known, confirmed=False)
        return FoundConnection(ref, await self._read(ref), confirmed=True)

    async def confirm(self, found: FoundConnection, *, forward: bool) -> None:
        """Before a reconcile's first ZStack write: raise `Stale` unless the API server still has the
        connection `found` holds (same uid and spec; for a forward reconcile also not being deleted)."""
        if found.confirmed:
            return
        events = self._events[found.ref]
        current = await self._read(found.ref)
        if not _same(found.connection, current, forward=forward):
            if self._events[found.ref] == events:  # else the watch delivered something newer meanwhile
                self._newer[found.ref] = _Answer(current)
            raise Stale(None, "ConnectionChanged", f"ZStackConnection {found.ref} (not as the watch had it)")
        found.confirmed = True

    async def _read(self, ref: Ref) -> IndexedConnection | None:
        body = await self._kube.read_object(CONNECTION_PLURAL, *ref)
        return IndexedConnection.of(body) if body is not None else None


def _same(used: IndexedConnection | None, current: IndexedConnection | None, *, forward: bool) -> bool:
    if used is None or current is None:
        return used is current
    if forward:
        return current == used
    return replace(current, deleting=False) == replace(used, deleting=False)  # a restore may use it
