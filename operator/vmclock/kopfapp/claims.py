"""The in-memory index of policies (a kopf index: no finalizer, populated before any handler runs).

Entries are keyed by the policy's connection, so a connection's resync loop finds its policies directly;
ownership checks walk all entries. kopf fills every index from the initial listing before it invokes the
first handler, so a reconcile never misses an older policy that would own its VMs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from vmclock.engine import PolicyClaim, PolicyState
from vmclock.engine.spec import DEFAULT_CONNECTION

Key = tuple[str, str]
INDEX_ID = "vmclock_policies"


@dataclass(frozen=True)
class IndexedPolicy:
    namespace: str
    name: str
    connection: str
    resync_seconds: int | None
    claim: PolicyClaim | None  # None when the spec is invalid

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)


PolicyIndex = kopf.Index[Key, IndexedPolicy]


def index_entry(body: Mapping[str, Any]) -> dict[Key, IndexedPolicy]:
    state = PolicyState.from_body(body)
    spec = state.spec
    connection = str((spec.get("connectionRef") or {}).get("name") or DEFAULT_CONNECTION)
    resync = spec.get("resyncIntervalSeconds")
    entry = IndexedPolicy(
        state.namespace, state.name, connection, resync if isinstance(resync, int) else None, state.claim()
    )
    return {(state.namespace, connection): entry}


def all_entries(index: PolicyIndex) -> Iterable[IndexedPolicy]:
    for store in index.values():
        yield from store


def of_connection(index: PolicyIndex, namespace: str, connection: str) -> list[IndexedPolicy]:
    return list(index.get((namespace, connection), ()))
