"""Which policy owns a VM when several select it.

Two policies that want different tracks for one VM would flip it back and forth forever. The rule that stops
this is age: the older policy (creationTimestamp, then namespace/name as a stable tie-break) owns the VM; a
younger one that wants another track reports `Conflict` and never writes it. Policies that agree on the track
do not conflict. A policy being deleted still owns its VMs until it is gone, so that its `Restore` finishes
before a younger policy takes over.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from vmclock.zstack.models import Track


@dataclass(frozen=True)
class PolicyClaim:
    """What one policy asks for, as far as ownership is concerned."""

    namespace: str
    name: str
    created: datetime
    track: Track
    vm_uuids: frozenset[str]
    deleting: bool = False

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

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
    return f"owned by older policy {owner.ref} which wants track {owner.track}"
