"""Which policy owns a VM when several select it.

Two policies that want different tracks for one VM would flip it back and forth forever. The rule that stops
this is age: the older policy (creationTimestamp, then namespace/name as a stable tie-break) owns the VM; a
younger one that wants another track reports `Conflict` and never writes it. Policies that agree on the track
do not conflict. A policy being deleted still owns its VMs until it is gone, so that its `Restore` finishes
before a younger policy takes over.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from vmclock.zstack.models import Track

OTHER_NAMESPACE = "a policy in another namespace"


@dataclass(frozen=True)
class PolicyClaim:
    """What one policy asks for, as far as ownership is concerned."""

    namespace: str
    name: str
    created: datetime
    track: Track
    vm_uuids: frozenset[str]
    deleting: bool = False
    enforce: bool = True
    paused: bool = False
    connection: str = "default"
    found: frozenset[str] | None = None  # VMs its last observation found (None: not known yet)
    label: str = ""  # how it is named to the policy looking at it (see `seen_by`)
    by_selector: bool = False  # spec.selector: `vm_uuids` is what it last resolved to

    @property
    def ref(self) -> str:
        return self.label or f"{self.namespace}/{self.name}"

    def seen_by(self, namespace: str) -> PolicyClaim:
        """This claim as shown to a policy of `namespace`: a policy of another tenant stays anonymous
        (design.md §6.4), in status, Events and logs alike."""
        label = f"{self.namespace}/{self.name}" if namespace == self.namespace else OTHER_NAMESPACE
        return replace(self, label=label)

    def backed(self) -> PolicyClaim | None:
        """The part of this claim that counts for ownership (design.md §6.3): only an Enforce policy that
        is not paused, and only for VMs its own last observation found. Whether its connection is Ready and
        reaches the same management node is the caller's to check (it knows the connections)."""
        if not self.enforce or self.paused or self.found is None:
            return None
        return replace(self, vm_uuids=self.vm_uuids & self.found)

    @property
    def seniority(self) -> tuple[datetime, str, str]:
        """Smaller is older; the namespace/name tie-break makes the order total and stable."""
        return (self.created, self.namespace, self.name)

    def same_policy(self, other: PolicyClaim) -> bool:
        return (self.namespace, self.name) == (other.namespace, other.name)


def conflicting_owners(me: PolicyClaim, others: Iterable[PolicyClaim]) -> dict[str, PolicyClaim]:
    """For each of my VMs owned by an older policy that wants another track: that owner (the oldest one)."""
    owners: dict[str, PolicyClaim] = {}
    for other in others:
        if other.same_policy(me) or other.seniority >= me.seniority:
            continue
        for uuid in other.vm_uuids & me.vm_uuids:
            current = owners.get(uuid)
            if current is None or other.seniority < current.seniority:
                owners[uuid] = other
    return {uuid: owner for uuid, owner in owners.items() if owner.track != me.track}


def rivals_and_exceptions(
    me: PolicyClaim, others: Iterable[PolicyClaim]
) -> tuple[list[PolicyClaim], frozenset[str]]:
    """Precedence (design.md §2): a policy naming a VM by UUID beats any selector policy for it, without a
    Conflict (the exception wins over the rule). So the age rule of `conflicting_owners` only runs among
    policies of my kind (the rivals), and a selector policy leaves alone every VM a UUID policy names
    (the exceptions; always empty for a UUID policy)."""
    rivals = [o for o in others if o.by_selector == me.by_selector]
    exceptions: frozenset[str] = frozenset()
    if me.by_selector:
        exceptions = frozenset().union(*(o.vm_uuids for o in others if not o.by_selector))
    return rivals, exceptions


def selected_elsewhere(
    uuids: Iterable[str], me_ref: tuple[str, str], others: Iterable[PolicyClaim]
) -> set[str]:
    """VMs that a live (not deleting) other policy still selects: restoring them would start a tug of war."""
    wanted = frozenset(uuids)
    return {
        uuid for o in overlapping(wanted, me_ref, others) if not o.deleting for uuid in o.vm_uuids & wanted
    }


def overlapping(
    uuids: Iterable[str], me_ref: tuple[str, str], others: Iterable[PolicyClaim]
) -> list[PolicyClaim]:
    """Policies sharing a VM with `uuids`: they re-evaluate ownership when this policy changes or goes."""
    wanted = frozenset(uuids)
    return [o for o in others if (o.namespace, o.name) != me_ref and o.vm_uuids & wanted]


def describe_owner(owner: PolicyClaim) -> str:
    who = (
        "an older policy in another namespace"
        if owner.ref == OTHER_NAMESPACE
        else f"older policy {owner.ref}"
    )
    return f"owned by {who} which wants track {owner.track}"
