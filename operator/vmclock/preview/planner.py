"""What applying VmClockPolicy manifests would do, decided by the engine's own functions on live readings.

The operator's answer depends on three things besides the manifest: what ZStack says now, which other
policies own VMs (design.md §6.3: only backed claims of policies whose connection reaches the same
management node count; a UUID policy beats a selector policy; otherwise the older one wins), and what a
policy already in the cluster remembers (its previous tracks, which `Restore` puts back). This module takes
all three as inputs and runs the engine's observation, ownership and planning functions on them, so a plan
says what the next reconcile would do, not what a second implementation thinks it would. Reads only: the
client is never asked to write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from vmclock.engine import PolicyClaim, PolicySpec, PolicyState
from vmclock.engine.external import ClockTrackClient, observe, observe_selection
from vmclock.engine.plan import (
    VmReading,
    conflicting_owners,
    plan_policy,
    previous_vms,
    restore_targets,
    rivals_and_exceptions,
    selected_elsewhere,
    with_record,
)
from vmclock.engine.spec import InvalidSpec, parse_policy_spec
from vmclock.preview.outcome import ClusterDiff, PolicyPreview, describe
from vmclock.zstack.models import Track


@dataclass(frozen=True)
class Proposed:
    """One manifest's policy as it would exist once applied: the cluster's creation time, status and
    record when a policy of that name exists there already (an edit keeps its seniority and memory), else
    created now (a new policy is the youngest)."""

    state: PolicyState
    spec: PolicySpec
    source: str
    node: str  # the management node its connection reaches
    record: Mapping[str, Track]  # a selector policy's previous-track record in the cluster
    current: PolicyState | None = None  # the version in the cluster now, if any


@dataclass(frozen=True)
class Rival:
    """A policy in the cluster that no manifest replaces: its claim as the operator would count it now
    (already `backed()`; a selector policy's with what its selector resolves to), and its node."""

    claim: PolicyClaim
    node: str


@dataclass(frozen=True)
class _Resolved:
    proposed: Proposed
    readings: Mapping[str, VmReading]  # of the VMs it names or its selector matched
    claim: PolicyClaim  # as it would claim once applied, before exceptions


async def _resolve(proposed: Proposed, client: ClockTrackClient) -> _Resolved:
    """Read the VMs a policy is about, as the reconcile does: a selector is resolved (raising when ZStack
    refuses it), a UUID list observed in batches."""
    spec, state = proposed.spec, proposed.state
    if spec.selector is not None:
        readings = await observe_selection(client, spec.selector)
        claim = state.claim_for(spec, selected=frozenset(readings))
    else:
        readings = await observe(client, spec.vm_uuids)
        found = frozenset(uuid for uuid, reading in readings.items() if reading.found)
        claim = replace(state.claim_for(spec), found=found)
    return _Resolved(proposed, readings, claim)


def _others(me: _Resolved, resolved: Sequence[_Resolved], rivals: Sequence[Rival]) -> list[PolicyClaim]:
    """Backed claims on my management node: the cluster's policies that no manifest replaces, and the
    other manifests as they would claim once applied."""
    replaced = {r.proposed.state.ref for r in resolved}
    node = me.proposed.node
    claims = [r.claim for r in rivals if r.node == node and (r.claim.namespace, r.claim.name) not in replaced]
    for other in resolved:
        backed = other.claim.backed()
        if other is not me and other.proposed.node == node and backed is not None:
            claims.append(backed)
    return claims


async def _plan_one(
    me: _Resolved, others: Sequence[PolicyClaim], client: ClockTrackClient, now: Sequence[PolicyClaim] | None
) -> PolicyPreview:
    """`now`: the cluster's claims as they are (for the difference from the cluster's version), or None."""
    proposed = me.proposed
    spec, state = proposed.spec, proposed.state
    previous = previous_vms(state.status)
    rivals, exceptions = rivals_and_exceptions(me.claim, others)
    readings = dict(me.readings)
    # One previous-track record for both kinds of policy, as the reconcile reads it (design.md §5.12)
    record = {**restore_targets(previous), **proposed.record}
    if spec.selector is None:
        uuids: tuple[str, ...] = spec.vm_uuids
        claim = me.claim
    else:
        uuids = tuple(sorted(u for u in readings if u not in exceptions))
        claim = state.claim_for(spec, selected=frozenset(uuids))
    targets = {u: t for u, t in record.items() if u not in set(uuids)} if spec.restore else {}
    previous = with_record(previous, record)
    unread = [uuid for uuid in targets if uuid not in readings]
    readings |= await observe(client, unread)
    plan = plan_policy(
        spec,
        readings,
        previous,
        paused=state.paused,
        same_generation=False,
        owners={u: o.seen_by(state.namespace) for u, o in conflicting_owners(claim, rivals).items()},
        restore_to=targets,
        handed_over=selected_elsewhere(targets, state.ref, others),
        uuids=uuids,
    )
    excepted = _exception_owners(set(me.readings) - set(uuids), others, state.namespace)
    diff = await _diff(proposed, uuids, now, client) if now is not None else None
    return describe(proposed, plan, readings, excepted, matched=len(me.readings), diff=diff)


async def _managed_now(
    current: PolicyState, now: Sequence[PolicyClaim], client: ClockTrackClient
) -> set[str]:
    """The VMs the cluster's version manages: its UUIDs, or what its selector picks now minus the VMs
    that UUID policies take (an invalid spec manages nothing)."""
    try:
        spec = parse_policy_spec(current.spec)
    except InvalidSpec:
        return set()
    if spec.selector is None:
        return set(spec.vm_uuids)
    _, exceptions = rivals_and_exceptions(current.claim_for(spec), now)
    return set(await client.select_vms(spec.selector)) - exceptions


async def _diff(
    proposed: Proposed, uuids: Sequence[str], now: Sequence[PolicyClaim], client: ClockTrackClient
) -> ClusterDiff:
    current = proposed.current
    if current is None:
        return ClusterDiff(exists=False, added=tuple(uuids))
    before = await _managed_now(current, [c for c in now if (c.namespace, c.name) != current.ref], client)
    after = set(uuids)
    claim = current.claim()
    return ClusterDiff(
        exists=True,
        track_before=claim.track if claim is not None else None,
        added=tuple(sorted(after - before)),
        released=tuple(sorted(before - after)),
    )


def _exception_owners(
    uuids: Iterable[str], others: Sequence[PolicyClaim], namespace: str
) -> dict[str, PolicyClaim]:
    """For VMs a selector leaves to UUID policies: the (oldest) UUID policy naming each."""
    by_uuid: dict[str, PolicyClaim] = {}
    for other in sorted((o for o in others if not o.by_selector), key=lambda o: o.seniority):
        for uuid in other.vm_uuids:
            by_uuid.setdefault(uuid, other.seen_by(namespace))
    return {uuid: by_uuid[uuid] for uuid in uuids if uuid in by_uuid}


async def preview(
    proposed: Sequence[Proposed],
    clients: Mapping[str, ClockTrackClient],
    rivals: Sequence[Rival] = (),
    *,
    against_cluster: bool = False,
) -> list[PolicyPreview]:
    """The plan of each proposed policy; `clients` by management node (each policy's `node`).
    `against_cluster`: also how each differs from its version in the cluster (`PolicyPreview.diff`)."""
    resolved = [await _resolve(p, clients[p.node]) for p in proposed]
    plans = []
    for me in resolved:
        node = me.proposed.node
        now = [r.claim for r in rivals if r.node == node] if against_cluster else None
        plans.append(await _plan_one(me, _others(me, resolved, rivals), clients[node], now))
    return plans
