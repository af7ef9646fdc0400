"""Red team of issue 14 (policies triggered by watch-event predicates, not kopf's diff base): the attacks
that break a promise. Each test names its scenario and the promise it breaks.

kopf's real per-event processing (test_kopf_wiring's Reactor) feeding the real PolicyController, its
workers, engine and client against the simulator over loopback; Kubernetes is test_controller's in-memory
FakeKube. kopf keeps one event stream per uid, so a worker may read a policy gone while kopf still holds
that incarnation's last events (its own status write's MODIFIED, then its DELETED)."""

from __future__ import annotations

import asyncio
import copy
from dataclasses import replace
from typing import Any

from kopf._core.engines import indexing
from kopf._core.reactor import inventory

from vmclock.engine.spec import POLICY_PLURAL
from vmclock.kopfapp import Runtime, build_registry, build_settings
from vmclock.refs import Ref

from . import test_kopf_wiring, test_startup_round
from .test_controller import DELETED_AT, Parts
from .test_kopf_wiring import Reactor

sim = test_startup_round.sim
parts = test_startup_round.parts
no_event_posting = test_startup_round.no_event_posting

Raw = dict[str, Any]
POLICIES = test_kopf_wiring.POLICIES


def reactor_of(parts: Parts) -> Reactor:
    """kopf's real per-event processing (test_kopf_wiring's Reactor) over this test's controller."""
    registry = build_registry(replace(Runtime.build(), controller=parts.controller))
    indexers = indexing.OperatorIndexers()
    indexers.ensure(registry._indexing.get_all_handlers())
    return Reactor(parts.controller, registry, build_settings(), indexers, inventory.ResourceMemories())


async def handle(reactor: Reactor, event_type: str | None, body: Raw) -> None:
    """kopf processes one watch event of a policy (its indexing, our predicate and handlers)."""
    await reactor.event(POLICIES, event_type, copy.deepcopy(body))


async def reconciled_then_read_gone(parts: Parts) -> tuple[Reactor, Ref, Raw]:
    """A policy created and reconciled, then deleted (Orphan: no finalizer); a worker asked to look again
    (a resync round, a sharing policy) reads it gone before kopf has processed the rest of its events.
    Returns kopf, and the object as our last status write left it (the MODIFIED event kopf still holds)."""
    reactor = reactor_of(parts)
    vms = parts.sim.state.vm_uuids()[:2]
    ref = parts.policy("late", vms)
    await handle(reactor, "ADDED", parts.kube.objects[(POLICY_PLURAL, *ref)])
    await parts.settle(lambda: parts.due(ref))
    written = copy.deepcopy(parts.kube.objects[(POLICY_PLURAL, *ref)])
    assert written.get("status"), "the reconcile wrote its status"
    del parts.kube.objects[(POLICY_PLURAL, *ref)]  # kopf has not processed its DELETED event yet
    parts.controller.queue.add(ref)
    await parts.settle(lambda: parts.controller.runtimes.get(ref) is None)
    return reactor, ref, written


async def test_our_status_write_event_after_a_worker_read_the_policy_gone_is_no_trigger(parts: Parts) -> None:
    """Status write, then deletion of an Orphan policy; a worker reads it gone first (and `_forget` makes the
    predicate forget its uid), then kopf processes the MODIFIED event of our own status write (its DELETED
    comes after it). Promise: our own status writes never cause a reconcile. Broken: the forgotten uid makes
    that event a first sight (NEW): it is queued and binds a runtime for the dead incarnation."""
    _, _, written = await reconciled_then_read_gone(parts)
    assert parts.controller.triggers.check("MODIFIED", written) is None, "our status write is a trigger"


async def test_a_dead_incarnations_late_event_does_not_replace_the_live_namesakes_runtime(
    parts: Parts,
) -> None:
    """As above, and a namesake (new uid) is created and reconciled before kopf gets to the old uid's late
    status-write event (kopf keeps one stream per uid: no order between them). Promise: a re-created
    namesake is its own incarnation; our status writes never cause a reconcile. Broken: the late event is a
    first sight, and its enqueue binds the dead uid under the name, marking the live namesake's runtime gone
    (its forward writes stop) and replacing it."""
    reactor, ref, written = await reconciled_then_read_gone(parts)
    parts.policy(ref.name, parts.sim.state.vm_uuids()[:2], uid="uid-namesake")
    await handle(reactor, "ADDED", parts.kube.objects[(POLICY_PLURAL, *ref)])
    await parts.settle(lambda: parts.due(ref))
    live = parts.controller.runtimes.get(ref)
    assert live is not None
    assert live.uid == "uid-namesake"
    await handle(reactor, "MODIFIED", written)
    current = parts.controller.runtimes.get(ref)
    assert current is live, f"the namesake's runtime was replaced by one of uid {current and current.uid}"


async def test_a_dead_incarnations_late_event_does_not_end_the_namesakes_restore(parts: Parts) -> None:
    """As above, and the namesake is a Restore policy being deleted while ZStack refuses every call, so
    kopf's restore handler waits (`wait_restored`) and must keep the finalizer. Promise: a Restore policy's
    deletion restores before its finalizer goes. Broken: the late status-write event of the dead uid is a
    first sight whose enqueue marks the namesake's runtime gone, and `wait_restored` answers True: kopf
    would remove the finalizer with the VMs still on the policy's track."""
    reactor, ref, written = await reconciled_then_read_gone(parts)
    vms = parts.host_vms(2)
    parts.policy(ref.name, vms, uid="uid-namesake", deletionPolicy="Restore")
    await handle(reactor, "ADDED", parts.kube.objects[(POLICY_PLURAL, *ref)])
    await parts.settle(lambda: parts.due(ref) and all(parts.sim.state.track_of(u) == "guest" for u in vms))
    parts.sim.faults.set_error_rate("*", 1.0, "SYS.1007")  # no restore can succeed now
    parts.kube.objects[(POLICY_PLURAL, *ref)]["metadata"]["deletionTimestamp"] = DELETED_AT
    waiting = asyncio.create_task(parts.controller.wait_restored(ref, "uid-namesake", 2.0))
    await asyncio.sleep(0.05)
    await handle(reactor, "MODIFIED", written)
    restored = await waiting
    assert [parts.sim.state.track_of(u) for u in vms] == ["guest", "guest"], "nothing was restored"
    assert not restored, "the restore handler was told the VMs are restored: kopf drops the finalizer"
