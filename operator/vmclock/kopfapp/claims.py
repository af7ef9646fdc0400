"""The in-memory index of policies (a kopf index: no finalizer, populated before any handler runs).

Entries are keyed by the policy's connection, so a connection's resync round finds its policies directly;
ownership checks walk all entries. kopf fills every index from the initial listing before it invokes the
first handler, so a reconcile never misses an older policy that would own its VMs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from vmclock.engine import PolicyClaim, PolicyState
from vmclock.engine.plan import previous_generation
from vmclock.engine.spec import DEFAULT_CONNECTION
from vmclock.refs import Ref

INDEX_ID = "vmclock_policies"


@dataclass(frozen=True)
class IndexedPolicy:
    ref: Ref
    connection: str
    resync_seconds: int | None
    claim: PolicyClaim | None  # None when the spec is invalid
    restore: bool = False  # deletionPolicy Restore: its connection must outlive it
    settled: bool = False  # its status is of its current generation (see `settled`)

    @property
    def uuids(self) -> frozenset[str]:
        return self.claim.vm_uuids if self.claim is not None else frozenset()


PolicyIndex = kopf.Index[Ref, IndexedPolicy]


def settled(body: Mapping[str, Any]) -> bool:
    """The stored status answers the policy's current generation: a reconcile finished it, in this or an
    earlier operator process. Such a policy only needs a drift check after a start, which its
    connection's start-up round batches (controller.py); a new generation needs its full reconcile."""
    state = PolicyState.from_body(body)
    return previous_generation(state.status) == state.generation


def resumed_settled(body: Mapping[str, Any], reason: str) -> bool:
    """kopf resumed a settled policy: nothing of it changed while the operator was away, so it asks about
    the world since the operator started. A change or a trigger annotation (kopf's other reasons, even
    at start-up) asks about the world from now on."""
    return reason == kopf.Reason.RESUME and settled(body)


def index_entry(body: Mapping[str, Any]) -> dict[Ref, IndexedPolicy]:
    state = PolicyState.from_body(body)
    spec = state.spec
    connection = str((spec.get("connectionRef") or {}).get("name") or DEFAULT_CONNECTION)
    resync = spec.get("resyncIntervalSeconds")
    entry = IndexedPolicy(
        Ref(state.namespace, state.name),
        connection,
        resync if isinstance(resync, int) else None,
        state.claim(),
        restore=spec.get("deletionPolicy") == "Restore",
        settled=settled(body),
    )
    return {Ref(state.namespace, connection): entry}


def all_entries(index: PolicyIndex) -> Iterable[IndexedPolicy]:
    for store in index.values():
        yield from store


def of_connection(index: PolicyIndex, connection: Ref) -> list[IndexedPolicy]:
    return list(index.get(connection, ()))
