"""Ownership checks find the policies sharing a VM through `ClaimsByVm` (issue 14: they walked every
policy of the cluster on every reconcile, 655 ms per call at 20,000 policies, on the event loop)."""

from __future__ import annotations

from typing import Any

import pytest

from vmclock.kopfapp.claims import ClaimsByVm, IndexedPolicy, index_entry
from vmclock.kopfapp.controller import PolicyController
from vmclock.refs import Ref

from . import test_controller
from .test_controller import NS, Parts, ready

sim = test_controller.sim
parts = test_controller.parts
no_event_posting = test_controller.no_event_posting


def body(name: str, uid: str, vms: list[str] | None = None, **spec: Any) -> dict[str, Any]:
    metadata = {"namespace": NS, "name": name, "uid": uid, "creationTimestamp": "2026-05-01T12:00:00Z"}
    return {"metadata": metadata, "spec": {"track": "guest", **({"vmUuids": vms} if vms else {}), **spec}}


def entry(name: str, uid: str, vms: list[str] | None = None, **spec: Any) -> IndexedPolicy:
    (indexed,) = index_entry(body(name, uid, vms, **spec)).values()
    return indexed


def vm(n: int) -> str:
    return f"{n:032x}"


def names(entries: list[IndexedPolicy]) -> set[str]:
    return {e.ref.name for e in entries}


def test_the_policies_naming_a_vm_and_every_selector_policy_are_found() -> None:
    claims = ClaimsByVm()
    claims.put("uid-a", entry("a", "uid-a", [vm(1), vm(2)]))
    claims.put("uid-b", entry("b", "uid-b", [vm(3)]))
    claims.put("uid-s", entry("s", "uid-s", selector={"namePattern": "*"}))
    assert names(claims.touching([vm(2)])) == {"a", "s"}  # a selector's VMs are its runtime's: any VM
    assert names(claims.touching([vm(4)])) == {"s"}
    assert names(claims.touching([vm(1), vm(3)])) == {"a", "b", "s"}


def test_a_changed_spec_moves_the_policy_to_its_new_vms() -> None:
    claims = ClaimsByVm()
    claims.put("uid-a", entry("a", "uid-a", [vm(1), vm(2)]))
    claims.put("uid-a", entry("a", "uid-a", [vm(2), vm(3)]))
    assert names(claims.touching([vm(1)])) == set()
    assert names(claims.touching([vm(3)])) == {"a"}
    claims.put("uid-a", entry("a", "uid-a", selector={"namePattern": "*"}))
    assert names(claims.touching([vm(2)])) == names(claims.touching([vm(8)])) == {"a"}
    claims.put("uid-a", entry("a", "uid-a", [vm(9)]))
    assert names(claims.touching([vm(8)])) == set()


def test_the_deletion_of_a_replaced_incarnation_keeps_the_new_ones_vms() -> None:
    """`kubectl replace --force`: kopf handles the new object's ADDED and the old one's DELETED side by
    side (its tasks are per uid), so the old one's removal may come after the new one is indexed."""
    claims = ClaimsByVm()
    claims.put("uid-old", entry("a", "uid-old", [vm(1)]))
    claims.put("uid-new", entry("a", "uid-new", [vm(1), vm(2)]))
    claims.drop("uid-old")
    assert [e.uuids for e in claims.touching([vm(1)])] == [frozenset({vm(1), vm(2)})]
    claims.drop("uid-new")
    claims.drop("uid-new")  # a second DELETED (a re-list) is harmless
    assert claims.touching([vm(1), vm(2)]) == []


async def test_an_ownership_check_looks_only_at_the_policies_sharing_its_vms(
    parts: Parts, monkeypatch: pytest.MonkeyPatch
) -> None:
    vms = parts.host_vms(3)
    mine = parts.policy("p", vms[:2])
    sharer = parts.policy("sharer", vms[1:])
    for ref in (mine, sharer):
        parts.controller.enqueue(ref)
        await parts.settle(lambda ref=ref: ready(parts.status(ref)))  # type: ignore[misc]
    for i in range(2000):  # policies on VMs of their own, as many tenants' small policies are
        name = f"o{i:04d}"
        parts.kube.objects[("vmclockpolicies", NS, name)] = body(name, f"uid-{name}", [vm(1000 + i)])
    parts.index.sync(parts.kube)
    looked: list[Ref] = []
    claim_of = PolicyController._claim

    def counting(self: PolicyController, indexed: IndexedPolicy) -> Any:
        looked.append(indexed.ref)
        return claim_of(self, indexed)

    monkeypatch.setattr(PolicyController, "_claim", counting)
    claims = parts.controller._others(mine)(vms[:2])
    assert [(c.name, c.vm_uuids) for c in claims] == [("sharer", frozenset(vms[1:]))]
    assert looked == [sharer]
    looked.clear()
    parts.controller.kick_sharing(vms[:2], mine)
    assert set(looked) == {mine, sharer}
