"""The in-memory index of policies (a kopf index: no finalizer, populated before any handler runs).

Entries are keyed by the policy's connection, so a connection's resync round finds its policies directly.
Ownership checks find the policies naming a VM in `ClaimsByVm`, fed by the same indexing call, so they cost
what the policy's own VMs cost, not what the cluster's policies cost. kopf fills every index from the
initial listing before it invokes the first handler, so a reconcile never misses an older policy that
would own its VMs. A selector policy's VMs are not in its entry, though (see `ClaimsUnknown`).
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


class ClaimsUnknown(Exception):
    """A write or restore that may take VMs of selector policies whose selection this process does not
    know yet (right after a start, until each one's own reconcile resolved it): it waits for them.

    Why wait rather than persist the selection: a selection is up to 10,000 VMs, too big for status, and a
    copy elsewhere would be stale exactly when it matters (the VMs changed while the operator was away).
    Why it stays cheap: only a selector policy's own writes (against older selector policies, its rivals
    by age) and restores (against any live one) wait; a UUID policy beats every selector policy (design.md
    §2), so the usual start-up round of UUID policies never waits and stays one batched read. The waiter
    queues the policies it waits for and is queued again as soon as each one resolved."""

    def __init__(self, waiting_for: Iterable[Ref]) -> None:
        self.waiting_for = sorted(set(waiting_for))
        super().__init__(f"waiting for {len(self.waiting_for)} selector policies to resolve their VMs")

    def seen_by(self, namespace: str) -> str:
        """Why, as a policy of `namespace` may be told: another tenant's policies stay anonymous (§6.4)."""
        own = [ref.name for ref in self.waiting_for if ref.namespace == namespace]
        elsewhere = len(self.waiting_for) - len(own)
        named = [*own[:5], *([f"{len(own) - 5} more"] if len(own) > 5 else [])]
        named += [f"{elsewhere} in other namespaces"] if elsewhere else []
        return f"waiting for selector policies to resolve their VMs first: {', '.join(named)}"


def settled(body: Mapping[str, Any]) -> bool:
    """The stored status answers the policy's current generation: a reconcile finished it, in this or an
    earlier operator process. Such a policy only needs a drift check after a start, which its
    connection's start-up round batches (controller.py); a new generation needs its full reconcile."""
    state = PolicyState.from_body(body)
    return previous_generation(state.status) == state.generation


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


class ClaimsByVm:
    """Every policy's index entry, found by the VMs it names. Keyed by uid, like kopf's own index: the
    events of a deleted policy and of its re-creation under the same name are handled side by side, so
    one incarnation's removal must not drop the other's VMs.

    A selector policy's VMs are what its last resolution found (the controller's runtime), not in its
    entry, so every selector policy is a candidate for any VM; the caller intersects."""

    def __init__(self) -> None:
        self._entries: dict[str, IndexedPolicy] = {}
        self._by_vm: dict[str, tuple[str, ...]] = {}  # a VM's few holders: a tuple is a quarter of a set
        self._selectors: set[str] = set()

    def put(self, uid: str, entry: IndexedPolicy) -> None:
        """kopf indexed incarnation `uid` (any watch event but its deletion)."""
        before = self._entries.get(uid)
        self._unlink(uid, before.uuids - entry.uuids if before is not None else frozenset())
        for uuid in entry.uuids - (before.uuids if before is not None else frozenset()):
            self._by_vm[uuid] = (*self._by_vm.get(uuid, ()), uid)
        self._entries[uid] = entry
        if entry.claim is not None and entry.claim.by_selector:
            self._selectors.add(uid)
        else:
            self._selectors.discard(uid)

    def drop(self, uid: str) -> None:
        """Incarnation `uid` is gone (its DELETED event)."""
        entry = self._entries.pop(uid, None)
        if entry is not None:
            self._unlink(uid, entry.uuids)
        self._selectors.discard(uid)

    def touching(self, uuids: Iterable[str]) -> list[IndexedPolicy]:
        """The entries that may claim any of `uuids`: those naming one, and every selector policy."""
        uids = set(self._selectors)
        for uuid in uuids:
            uids.update(self._by_vm.get(uuid, ()))
        return [self._entries[uid] for uid in uids]

    def _unlink(self, uid: str, uuids: Iterable[str]) -> None:
        for uuid in uuids:
            holders = tuple(h for h in self._by_vm.get(uuid, ()) if h != uid)
            if holders:
                self._by_vm[uuid] = holders
            else:
                self._by_vm.pop(uuid, None)


def of_connection(index: PolicyIndex, connection: Ref) -> list[IndexedPolicy]:
    return list(index.get(connection, ()))
