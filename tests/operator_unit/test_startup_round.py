"""The start-up round (issue 14): after a start, the first reconciles of settled policies share one
batched read per connection, whatever order kopf resumes them in; new generations still read afresh.

The real PolicyController, ConnectionManager, client, shared observer and engine against the simulator over
loopback; Kubernetes is test_controller's in-memory FakeKube; kopf listing a policy at a start is the
predicate and `enqueue` called as registry.py's watch-event handler calls them."""

from __future__ import annotations

import asyncio
import math

from vmclock.engine.spec import POLICY_PLURAL
from vmclock.kopfapp.triggers import settled_at_start
from vmclock.refs import Ref
from vmclock.zstack.inventory import QUERY_VM

from . import test_controller
from .test_controller import CONNECTION, Parts, reconcile_starts

sim = test_controller.sim
parts = test_controller.parts
no_event_posting = test_controller.no_event_posting

OBSERVING = (QUERY_VM, "QueryResourceConfig", "QueryGlobalConfig", "QuerySystemTag")
"""The queries an observation makes (inventories, tracks, the global default); not job polls, not login."""

RESUME_GAP = 0.05
"""Seconds between two resume handlers: kopf resumes objects one by one, so without the round each early
reconcile's read would start a batch of its own before the later policies ask."""


def observing_reads(parts: Parts) -> int:
    return sum(parts.sim.stats.calls[api] for api in OBSERVING)


def settled_policy(parts: Parts, name: str, vms: list[str]) -> Ref:
    """A policy as an earlier operator process left it: status of generation 1, its VMs on track guest."""
    ref = parts.policy(name, vms)
    parts.kube.objects[(POLICY_PLURAL, *ref)]["status"] = {"observedGeneration": 1}
    parts.index.sync(parts.kube)
    for uuid in vms:
        parts.sim.state.set_track_behind(uuid, "guest")
    return ref


def resume(parts: Parts, ref: Ref) -> None:
    """What registry.py's reconcile handler does when kopf's listing at a start delivers the policy
    (event type None)."""
    body = parts.kube.objects[(POLICY_PLURAL, *ref)]
    generation = int(body["metadata"]["generation"])
    uid = parts.uid(ref)
    trigger = parts.controller.triggers.note(None, body)
    parts.controller.enqueue(
        ref,
        uid=uid,
        generation=generation,
        connection=CONNECTION.name,
        settled=settled_at_start(trigger, body),
    )


async def test_policies_resumed_one_by_one_after_a_start_share_one_batched_read(parts: Parts) -> None:
    sim = parts.sim
    size, count = 4, 8
    vms = sim.state.vm_uuids()[: size * count]
    refs = [settled_policy(parts, f"p{i}", vms[i * size : (i + 1) * size]) for i in range(count)]
    drifted = [vms[0], vms[size * count // 2]]
    for uuid in drifted:
        sim.state.set_track_behind(uuid, "host")  # changed while the operator was down
    sim.faults.latency = 0.02  # a read takes a while, as it does against a real management node
    sim.stats.reset()

    for ref in refs:
        resume(parts, ref)
        await asyncio.sleep(RESUME_GAP)
    await parts.settle(lambda: all(parts.due(ref) for ref in refs), within=30)

    assert [sim.state.track_of(u) for u in drifted] == ["guest", "guest"], "the drifted VMs were written back"
    assert len(sim.stats.writes) == len(drifted), "only the drifted VMs were written"
    reads = observing_reads(parts)
    # The round's batch of every VM (inventories, their tracks, the global default: one page each here),
    # and at most one more of the policies that asked while it was being read.
    assert reads <= 2 * (math.ceil(len(vms) / 200) * 2 + 1), (
        f"{reads} observing reads for {count} resumed policies ({dict(sim.stats.calls)}): "
        "one batch per few policies, not one for the start-up round"
    )


async def test_a_new_generation_after_a_start_is_read_afresh_not_from_the_round(parts: Parts) -> None:
    """The round's reading answers only what it can: a policy whose spec changed while the operator was
    down (a new generation) asked after that change, so its reconcile reads ZStack again."""
    sim = parts.sim
    vms = sim.state.vm_uuids()[:8]
    first = settled_policy(parts, "first", vms[:4])
    changed = settled_policy(parts, "changed", vms[4:])
    resume(parts, first)  # the round begins: both policies' VMs are hinted and read in one batch
    await parts.settle(lambda: parts.due(first))

    sim.state.set_track_behind(vms[4], "host")  # after the round's reading
    body = parts.kube.objects[(POLICY_PLURAL, *changed)]
    body["metadata"]["generation"] = 2  # its spec changed: generation 2, status still of generation 1
    parts.index.sync(parts.kube)
    resume(parts, changed)
    await parts.settle(lambda: parts.due(changed))

    assert sim.state.track_of(vms[4]) == "guest", (
        "a new generation acted on the start-up round's reading taken before it asked (the drift after it "
        "was not seen)"
    )


async def test_policies_the_round_found_drifted_are_reconciled_before_the_in_sync_ones(parts: Parts) -> None:
    """After a start most policies only confirm they are in sync; the few that must write back go first,
    so the correction does not wait for all the others (issue 14: written back within seconds)."""
    sim = parts.sim
    size, count = 2, 16
    vms = sim.state.vm_uuids()[: size * count]
    refs = [settled_policy(parts, f"p{i:02d}", vms[i * size : (i + 1) * size]) for i in range(count)]
    drifted = {refs[-1].name, refs[-2].name}  # resumed last
    for ref in refs[-2:]:
        sim.state.set_track_behind(parts.kube.objects[(POLICY_PLURAL, *ref)]["spec"]["vmUuids"][0], "host")
    sim.faults.latency = 0.02
    started = reconcile_starts(parts)
    for ref in refs:
        resume(parts, ref)
    await parts.settle(lambda: all(parts.due(ref) for ref in refs), within=30)

    workers = 4  # test_controller's running_parts: the first four were taken before anything was read
    assert drifted <= set(started[: workers + len(drifted)]), (
        f"reconciles began in the order {started}: the drifted {sorted(drifted)} waited behind in-sync ones"
    )


async def test_a_policy_resumed_after_the_round_closed_reads_afresh(parts: Parts) -> None:
    """A round is joined only for STARTUP_JOIN_SECONDS: a policy resumed later (a standby taking over, a
    namespace opted in late) starts a round of its own, dated then; it does not take a reading from the
    first round that predates a drift it could have seen."""
    sim = parts.sim
    vms = sim.state.vm_uuids()[:8]
    early = settled_policy(parts, "early", vms[:4])
    late = settled_policy(parts, "late", vms[4:])  # in the index: the first round reads its VMs too
    resume(parts, early)
    await parts.settle(lambda: parts.due(early))
    sim.state.set_track_behind(vms[4], "host")  # after the first round's reading
    parts.controller._startup_join = 0.0  # the first round has closed
    resume(parts, late)
    await parts.settle(lambda: parts.due(late))
    assert sim.state.track_of(vms[4]) == "guest", "a reading of a closed round answered a later resume"
