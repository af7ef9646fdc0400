"""The ZStackConnections as the operator's watch delivers them (a kopf index), so a reconcile does not GET its
connection from the API server each time.

Every reconcile and every restore needs its connection's spec. With 1,000 small policies on one connection
that was 2-4 GETs per policy for an object the operator watches anyway. kopf fills its indexes from the
initial listing before it invokes the first handler, and the workers start from a handler (controller.py:
`bind`), so by the time a worker asks, every connection that existed at start-up is known; later ones
arrive with their watch events, before the handlers of those events run.

The index is a view that may lag the API server by one watch event, and it is never trusted for an answer it
cannot give: a connection it does not know (created after the policy's event reached us, or already gone)
or knows twice (a re-created namesake whose predecessor's DELETED event has not arrived yet) is read from the
API server instead, so "absent" only ever comes from the API server. What it does answer is only a decision
aid: a reconcile confirms it with the API server before it writes ZStack (connectionsource.py).
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from vmclock.refs import Ref

CONNECTION_INDEX_ID = "vmclock_connections"


@dataclass(frozen=True)
class IndexedConnection:
    uid: str
    spec: Mapping[str, Any]
    deleting: bool  # deletionTimestamp is set: it waits only for the restores that need it

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> IndexedConnection:
        meta = body.get("metadata") or {}
        # a copy: kopf's body is a view onto a watch event, and a lease keeps the spec it was given
        spec = copy.deepcopy(dict(body.get("spec") or {}))
        return cls(str(meta.get("uid") or ""), spec, bool(meta.get("deletionTimestamp")))


ConnectionIndex = Mapping[Ref, Collection[IndexedConnection]]  # kopf.Index[Ref, IndexedConnection] is one


def connection_entry(body: Mapping[str, Any]) -> dict[Ref, IndexedConnection]:
    """kopf's indexing handler for ZStackConnections (every watch event but the deletion, which kopf
    itself takes out of the index)."""
    return {Ref.of(body): IndexedConnection.of(body)}


def known_connection(index: ConnectionIndex | None, ref: Ref) -> IndexedConnection | None:
    """The connection as the watch last delivered it, when that is unambiguous; None: ask the API server."""
    entries = list(index.get(ref, ())) if index is not None else []
    return entries[0] if len(entries) == 1 else None
